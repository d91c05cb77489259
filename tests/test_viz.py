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


def test_browse_shows_the_chosen_sample_in_an_image_widget():
    import ipywidgets as widgets

    from synthlib.datasets import open_dataset

    datasets = {s: open_dataset("minicity", None, "val", n=3, style=s, height=32, width=64) for s in ("real", "flat")}
    box = viz.browse(datasets)
    (choose, index), view = box.children[0].children, box.children[1]
    # no Output widget anywhere: a headless runner would mirror its outputs to the kernel and can hang
    assert not any(isinstance(w, widgets.Output) for w in (box, *box.children, choose, index, view))
    first = bytes(view.value)
    assert first.startswith(b"\x89PNG") and index.max == 2
    index.value = 2
    second = bytes(view.value)
    assert second != first  # another sample drawn
    choose.value = "flat"
    assert bytes(view.value) not in (first, second) and index.max == 2


def test_browse_cell_finishes_under_papermill(tmp_path):
    """A browser of large images hung papermill for good (every run here, with the kernel idle).

    ``interactive`` drew into an Output widget; nbclient mirrors an Output widget's
    contents to the kernel by a synchronous send on the shell socket while it waits
    on that socket, with no timeout, for the cell's reply. The send swallows the
    socket's edge-triggered readiness and the reply is never read. No execution
    timeout here: that is the path that hung (``reproduce`` now always sets one).
    """
    import subprocess
    import sys

    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(
            # photo-sized noise: a figure that does not compress, as real images do not
            "import numpy as np\nfrom synthlib import viz\nfrom synthlib.datasets import Sample\n"
            "rng = np.random.default_rng(0)\n"
            "noise = [Sample(rng.integers(0, 256, (512, 1024, 3), np.uint8), rng.integers(0, 19, (512, 1024), np.uint8), id=str(i)) for i in range(2)]\n"
            "viz.browse({'noise': noise}, panels=('image', 'label'))"
        ),
        nbformat.v4.new_code_cell("done = True"),
    ]
    nbformat.write(nb, tmp_path / "browse.ipynb")
    cmd = [sys.executable, "-m", "papermill", str(tmp_path / "browse.ipynb"), str(tmp_path / "out.ipynb"), "-k", "python3", "--no-progress-bar"]
    try:
        subprocess.run(cmd, check=True, timeout=180, capture_output=True)
    except subprocess.TimeoutExpired:
        pytest.fail("papermill still running the browse cell after 180 s: the headless hang is back")
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert [c.metadata.papermill.status for c in out.cells] == ["completed", "completed"]
