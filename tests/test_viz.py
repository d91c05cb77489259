import numpy as np
import pytest

from synthlib import viz


def test_image_grid_places_panels_titles_and_row_labels():
    red = np.zeros((4, 8, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((4, 8, 3), np.uint8)
    blue[..., 2] = 255
    rows = [("first", [red, ("own title", blue)]), ("second", [blue, None, red])]
    fig = viz.image_grid(rows, columns=("left", "middle", "right"))
    axes = np.array(fig.axes).reshape(2, 3)
    # column titles on the first row, a (title, image) panel keeps its own
    assert [ax.get_title() for ax in axes[0]] == ["left", "own title", "right"]
    assert [ax.get_title() for ax in axes[1]] == ["", "", ""]
    assert [axes[r, 0].get_ylabel() for r in range(2)] == ["first", "second"]
    # each image where it was put; short rows and None leave the cell empty
    assert (axes[0, 0].images[0].get_array()[..., 0] == 255).all()
    assert (axes[0, 1].images[0].get_array()[..., 2] == 255).all()
    assert not axes[0, 2].images and not axes[1, 1].images
    assert (axes[1, 2].images[0].get_array()[..., 0] == 255).all()
    # the cells keep the images' 1:2 aspect
    width, height = fig.get_size_inches()
    assert width / 3 == pytest.approx(2 * (height - 0.3) / 2)


def test_image_grid_without_rows_is_an_error():
    with pytest.raises(ValueError, match="no rows"):
        viz.image_grid([])
