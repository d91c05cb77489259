import numpy as np
import pytest

from synthlib.metrics import ConfusionMatrix


def test_iou_matches_a_hand_computed_matrix_with_an_absent_class():
    # gt:   road road car  car  sky  255
    # pred: road car  car  road sky  car
    gt = np.array([0, 0, 13, 13, 10, 255], np.uint8)
    pred = np.array([0, 13, 13, 0, 10, 13], np.uint8)
    cm = ConfusionMatrix(19).update(pred, gt)
    assert cm.matrix.sum() == 5  # the ignore pixel is not counted
    iou = cm.iou()
    assert iou[0] == pytest.approx(100 / 3)  # tp 1, fp 1, fn 1
    assert iou[13] == pytest.approx(100 / 3)
    assert iou[10] == pytest.approx(100.0)
    assert np.isnan(iou[1])  # absent from both: left out of the mean
    assert cm.miou() == pytest.approx((100 / 3 + 100 / 3 + 100) / 3)
    assert cm.pixel_accuracy() == pytest.approx(60.0)


def test_a_class_only_predicted_counts_as_zero():
    cm = ConfusionMatrix().update(np.array([[0, 1]]), np.array([[0, 0]]))
    assert cm.iou()[1] == 0.0
    assert cm.miou() == pytest.approx((50.0 + 0.0) / 2)


def test_subset_means_leave_out_synthia_missing_classes():
    gt = np.array([0, 9, 14, 16], np.uint8)  # road, terrain, truck, train
    pred = np.array([0, 0, 0, 0], np.uint8)
    cm = ConfusionMatrix().update(pred, gt)
    s = cm.summary()
    assert s["mIoU"] == pytest.approx(25.0 / 4)  # road 25 %, the others 0
    assert s["mIoU16"] == pytest.approx(25.0)  # only road is present among the 16
    assert s["mIoU13"] == pytest.approx(25.0)


def test_streaming_updates_equal_one_update_and_tables():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 19, (4, 8, 8)).astype(np.uint8)
    pred = rng.integers(0, 19, (4, 8, 8)).astype(np.uint8)
    one = ConfusionMatrix().update(pred, gt)
    many = ConfusionMatrix()
    for p, g in zip(pred, gt, strict=True):
        many.update(p, g)
    assert np.array_equal(one.matrix, many.matrix)
    table = one.table()
    assert list(table.index[-4:]) == ["mIoU", "mIoU16", "mIoU13", "pixel_acc"]
    assert table.loc["mIoU", "IoU"] == pytest.approx(one.miou())
    row = one.row("source only")
    assert row.index[0] == "source only" and row.loc["source only", "car"] == pytest.approx(one.iou()[13])


def test_bad_shapes_and_values_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        ConfusionMatrix().update(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="label holds values"):
        ConfusionMatrix().update(np.zeros(2, np.uint8), np.array([0, 19], np.uint8))


def test_ious_and_means_equal_cityscapes_scripts_on_label_id_images(tmp_path):
    """The reference evaluation, run on the same predictions written as Cityscapes labelId PNGs."""
    import copy

    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as reference
    from cityscapesscripts.helpers.labels import trainId2label
    from PIL import Image

    args = copy.copy(reference.args)
    args.evalInstLevelScore, args.evalPixelAccuracy, args.quiet = False, False, True
    matrix = reference.generateMatrix(args)
    label_id = np.zeros(256, np.uint8)  # 255 -> 0 ("unlabeled", ignored in evaluation)
    label_id[:19] = [trainId2label[t].id for t in range(19)]
    rng = np.random.default_rng(0)
    ours = ConfusionMatrix()
    for i in range(3):
        gt = rng.integers(0, 19, (32, 64))
        gt[rng.random(gt.shape) < 0.2] = 255
        gt[(gt == 5) | (gt == 7)] = 255  # pole absent everywhere; traffic sign only predicted
        pred = np.where(rng.random(gt.shape) < 0.6, gt.clip(0, 18), rng.integers(0, 19, gt.shape))
        pred[pred == 5] = 6
        ours.update(pred, gt)
        files = [tmp_path / f"{i}_{kind}_labelIds.png" for kind in ("pred", "gt")]
        for file, array in zip(files, (pred, gt), strict=True):
            Image.fromarray(label_id[array]).save(file)
        reference.evaluatePair(str(files[0]), str(files[1]), matrix, None, {}, args)
    expected = {trainId2label[t].name: reference.getIouScoreForLabel(trainId2label[t].id, matrix, args) for t in range(19)}
    iou = ours.iou() / 100
    assert np.isnan(iou[5]) and iou[7] == 0  # the two edge cases are there
    np.testing.assert_allclose(iou, list(expected.values()), rtol=1e-12, equal_nan=True)
    assert ours.miou() / 100 == pytest.approx(reference.getScoreAverage(expected, args), rel=1e-12)
