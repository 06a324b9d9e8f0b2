"""Event files and event scoring: temporal IoU, one-to-one greedy matching, precision / recall / F1."""

import json
import math

import pandas as pd
import pytest

from drowsy.errors import DrowsyError
from drowsy.monitor.events import (
    Event,
    event_table,
    false_alerts,
    false_alerts_per_hour,
    load_alert_free,
    load_events,
    match_events,
    score_events,
    temporal_iou,
    write_events,
)


def test_an_event_covers_its_half_open_interval():
    event = Event("yawn", 1.0, 2.0)
    assert event.covers(1.0) and event.covers(1.5)
    assert not event.covers(2.0) and not event.covers(0.9)


def test_temporal_iou():
    assert temporal_iou(Event("yawn", 0, 2), Event("yawn", 1, 3)) == pytest.approx(1 / 3)
    assert temporal_iou(Event("yawn", 0, 2), Event("yawn", 0, 2)) == 1.0
    assert temporal_iou(Event("yawn", 0, 1), Event("yawn", 1, 2)) == 0.0  # touching is not overlapping
    assert temporal_iou(Event("yawn", 0, 1), Event("yawn", 5, 6)) == 0.0


def test_perfect_prediction_scores_one_per_type():
    truth = [Event("yawn", 1, 3), Event("phone", 2, 9), Event("yawn", 10, 12)]
    scores = score_events(list(truth), truth)
    assert list(scores) == ["yawn", "phone"]  # EVENT_TYPES order
    assert scores["yawn"] == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "tp": 2,
        "fp": 0,
        "fn": 0,
        "latency_median": None,
        "latency_worst": None,
    }


def test_matching_is_one_to_one():
    truth = [Event("yawn", 0, 2)]
    two_halves = [Event("yawn", 0, 1.1), Event("yawn", 0.9, 2)]  # each IoU >= 0.5 with the one truth
    assert score_events(two_halves, truth)["yawn"] == {
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3),
        "tp": 1,
        "fp": 1,
        "fn": 0,
        "latency_median": None,
        "latency_worst": None,
    }
    one_long = [Event("phone", 0, 10)]
    two_truths = [Event("phone", 0, 6), Event("phone", 4, 10)]  # each IoU 0.6 with the one prediction
    scores = score_events(one_long, two_truths)["phone"]
    assert (scores["tp"], scores["fp"], scores["fn"]) == (1, 0, 1)
    assert (scores["precision"], scores["recall"]) == (1.0, 0.5)
    assert match_events(one_long, two_truths) == [(0, 0, pytest.approx(0.6))]  # tie: the earlier truth


def test_matches_are_listed_in_truth_order():
    truth = [Event("yawn", 0, 2), Event("yawn", 10, 12)]
    predicted = [Event("yawn", 10, 11.5), Event("yawn", 0, 2)]  # IoU 0.75 with truth 1, 1.0 with truth 0
    assert match_events(predicted, truth) == [(1, 0, 1.0), (0, 1, pytest.approx(0.75))]


def test_an_overlap_of_exactly_min_overlap_is_a_match():
    half = [Event("yawn", 0, 1)]  # IoU 1/2 with the truth
    assert match_events(half, [Event("yawn", 0, 2)]) == [(0, 0, 0.5)]
    exact, near = [Event("yawn", 0, 2), Event("yawn", 5, 7)], [Event("yawn", 0, 2), Event("yawn", 5, 6.9)]
    assert match_events(exact, near, min_overlap=1) == [(0, 0, 1.0)]  # 1 asks for identical intervals


@pytest.mark.parametrize("min_overlap", [0, -0.5, 1.5])
def test_min_overlap_outside_zero_to_one_is_refused(min_overlap):
    with pytest.raises(ValueError, match=rf"min_overlap must be in \(0, 1\], got {min_overlap}$"):
        match_events([], [], min_overlap=min_overlap)


def test_greedy_takes_the_largest_overlap_first():
    # P0's best truth is T1 (IoU 0.71 vs 0.6), but P1 fits T1 better (0.95) and nothing else: taking
    # the largest IoU first pairs P1-T1 and leaves T0 to P0, two matches instead of one.
    truth = [Event("phone", 0, 10), Event("phone", 4, 14)]
    predicted = [Event("phone", 2.5, 12.5), Event("phone", 4, 13.5)]
    assert match_events(predicted, truth) == [(0, 0, pytest.approx(0.6)), (1, 1, pytest.approx(0.95))]


def test_types_never_match_each_other():
    scores = score_events([Event("phone", 0, 5)], [Event("smoking", 0, 5)])
    assert scores["phone"]["fp"] == 1 and scores["phone"]["f1"] == 0.0
    assert scores["smoking"]["fn"] == 1 and scores["smoking"]["recall"] == 0.0


def test_min_overlap_and_counts_on_a_hand_made_list():
    truth = [Event("yawn", 0, 2), Event("yawn", 10, 12), Event("yawn", 20, 22)]
    predicted = [Event("yawn", 0.2, 2), Event("yawn", 11, 13), Event("yawn", 30, 31)]  # IoU 0.9, 1/3, 0
    strict = score_events(predicted, truth, min_overlap=0.5)["yawn"]
    assert (strict["tp"], strict["fp"], strict["fn"]) == (1, 2, 2)
    assert strict["precision"] == pytest.approx(1 / 3) and strict["recall"] == pytest.approx(1 / 3)
    loose = score_events(predicted, truth, min_overlap=0.3)["yawn"]
    assert (loose["tp"], loose["fp"], loose["fn"]) == (2, 1, 1)
    assert loose["f1"] == pytest.approx(2 / 3)


def test_requested_type_without_events_scores_zero():
    assert score_events([], [], types=["microsleep"]) == {
        "microsleep": {
            "precision": 0.0,
            "recall": 0.0,
            "f1": 0.0,
            "tp": 0,
            "fp": 0,
            "fn": 0,
            "latency_median": None,
            "latency_worst": None,
        }
    }


def test_dicts_are_accepted_and_files_round_trip(tmp_path):
    events = [{"type": "phone", "start": 2.0, "end": 4.5, "alert": 3}, Event("blink", 0.5, 0.7)]
    path = write_events(tmp_path / "events.json", events, fps=15, frames=150)
    document = json.loads(path.read_text())
    assert (document["fps"], document["frames"], document["seconds"]) == (15, 150, 10.0)
    assert load_events(path) == [Event("blink", 0.5, 0.7), Event("phone", 2.0, 4.5, 3.0)]  # sorted by start


def test_written_times_are_rounded_to_a_millisecond(tmp_path):
    path = write_events(
        tmp_path / "events.json",
        [Event("yawn", 1.23456, 2.34567, 2.00049)],
        fps=15,
        frames=100,
        alert_free=[(12.3456, 61.23456)],
    )
    assert json.loads(path.read_text()) == {
        "fps": 15,
        "frames": 100,
        "seconds": 6.667,  # 100 / 15 s
        "events": [{"type": "yawn", "start": 1.235, "end": 2.346, "alert": 2.0}],
        "alert_free": [[12.346, 61.235]],
    }


def test_zero_length_intervals_load_and_overlap_nothing(tmp_path):
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"events": [{"type": "blink", "start": 1, "end": 1}], "alert_free": [[5, 5]]}))
    instant = Event("blink", 1.0, 1.0)
    assert load_events(path) == [instant] and load_alert_free(path) == [(5.0, 5.0)]
    assert temporal_iou(instant, instant) == 0.0
    assert false_alerts_per_hour([Event("yawn", 5, 6, 5)], [(5.0, 5.0)]) is None  # no alert-free time


@pytest.mark.parametrize(
    "record, field",
    [
        ({"type": "nap", "start": 0, "end": 1}, "type"),
        ({"type": "yawn", "start": "0", "end": 1}, "start"),
        ({"type": "yawn", "start": 2, "end": 1}, "end"),
    ],
)
def test_malformed_event_file_names_record_and_field(tmp_path, record, field):
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"events": [{"type": "yawn", "start": 0, "end": 1}, record]}))
    with pytest.raises(DrowsyError, match=rf"events.json: record 1: field '{field}'"):
        load_events(path)


def test_event_table_lists_matches_misses_and_false_alarms():
    truth = [Event("yawn", 10, 12), Event("phone", 5, 9), Event("yawn", 0, 2)]
    predicted = [Event("yawn", 11, 13), Event("yawn", 4, 5), Event("yawn", 0.5, 1.5)]  # IoU 1/3, -, 1/2
    nan = float("nan")
    expected = pd.DataFrame(
        {  # by type in EVENT_TYPES order, then by time (the truth's, else the prediction's)
            "type": ["yawn", "yawn", "yawn", "phone"],
            "outcome": ["match", "false alarm", "match", "missed"],
            "truth_start": [0.0, nan, 10.0, 5.0],
            "truth_end": [2.0, nan, 12.0, 9.0],
            "pred_start": [0.5, 4.0, 11.0, nan],
            "pred_end": [1.5, 5.0, 13.0, nan],
            "iou": [0.5, 0.0, 0.333, 0.0],
        }
    )
    pd.testing.assert_frame_equal(event_table(predicted, truth, min_overlap=0.3), expected)


def test_event_table_of_false_alarms_only_or_of_nothing():
    table = event_table([Event("phone", 3, 4), Event("yawn", 1, 2)], [])
    assert table[["type", "outcome", "pred_start"]].values.tolist() == [
        ["yawn", "false alarm", 1.0],
        ["phone", "false alarm", 3.0],
    ]
    assert all(math.isnan(t) for t in table["truth_start"].tolist() + table["truth_end"].tolist())
    empty = event_table([], [])
    assert empty.empty and list(empty.columns) == [
        "type",
        "outcome",
        "truth_start",
        "truth_end",
        "pred_start",
        "pred_end",
        "iou",
    ]


def test_alert_times_round_trip_and_give_onset_latencies(tmp_path):
    truth = [Event("distraction", 10.0, 14.0, 13.0), Event("sleep", 20.0, 24.0, 23.0), Event("blink", 1.0, 1.2)]
    found = [Event("distraction", 10.1, 14.0, 13.05), Event("sleep", 19.9, 24.1, 22.9), Event("blink", 1.0, 1.2)]
    path = write_events(tmp_path / "events.json", found, fps=15, frames=600, alert_free=[(30.0, 60.0)])
    document = json.loads(path.read_text())
    assert "alert" not in document["events"][0] and document["alert_free"] == [[30.0, 60.0]]
    assert load_events(path) == sorted(found, key=lambda e: e.start)
    assert load_alert_free(path) == [(30.0, 60.0)]
    scores = score_events(load_events(path), truth)
    assert scores["distraction"]["latency_median"] == pytest.approx(0.05)
    assert scores["sleep"]["latency_worst"] == pytest.approx(-0.1) and scores["blink"]["latency_median"] is None
    scores = score_events(
        [Event("yawn", 0, 2, 1.3), Event("yawn", 5, 7, 5.6)], [Event("yawn", 0, 2, 1.0), Event("yawn", 5, 7, 6.0)]
    )
    # latencies +0.3 and -0.4 s: the worst is the one furthest from 0, not the largest
    assert scores["yawn"]["latency_median"] == pytest.approx(-0.05)
    assert scores["yawn"]["latency_worst"] == pytest.approx(-0.4)


def test_false_alerts_per_hour_counts_alerts_inside_the_alert_free_stretches():
    found = [
        Event("yawn", 100.0, 102.0, 101.0),
        Event("blink", 200, 200.2),
        Event("phone", 3500, 3510, 3502),
        Event("distraction", 3599, 3605, 3602),
    ]  # alerts at 101, 3502, 3602 s; the blink is no alert
    assert false_alerts_per_hour(found, [(0.0, 3600.0)]) == pytest.approx(2.0)  # 3602 s lies outside
    assert false_alerts_per_hour(found, [(0.0, 1800.0)]) == pytest.approx(2.0)  # one in half an hour
    assert false_alerts_per_hour(found, []) is None


def test_an_alert_counts_from_the_start_of_an_alert_free_stretch_to_just_before_its_end():
    found = [
        Event("phone", 1800, 1810, 1800.0),
        Event("yawn", 2000, 2005),
        Event("sleep", 3590, 3600, 3600.0),
        Event("drowsy", 1000, 1900, 1000.0),
    ]  # the yawn has no alert time: it alerts at its start
    assert false_alerts(found, [(1800.0, 3600.0)]) == found[:2]
    assert false_alerts_per_hour(found, [(1800.0, 3600.0)]) == pytest.approx(4.0)  # two in half an hour


def test_a_bad_alert_field_or_alert_free_stretch_is_one_line(tmp_path):
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"events": [{"type": "sleep", "start": 1, "end": 5, "alert": "soon"}]}))
    with pytest.raises(DrowsyError, match=r"record 0: field 'alert': must be a number of seconds, got 'soon'"):
        load_events(path)
    path.write_text(json.dumps({"events": [{"type": "nap", "start": 0, "end": 1}]}))
    with pytest.raises(
        DrowsyError,
        match=r"events.json: record 0: field 'type': must be one of blink, microsleep, "
        r"sleep, unresponsive, drowsy, yawn, distraction, vats, phone, smoking, "
        r"degraded, got 'nap'$",
    ):
        load_events(path)
    path.write_text(json.dumps({"events": [], "alert_free": [[5, 1]]}))
    with pytest.raises(DrowsyError, match=r"alert_free record 0: expected \[start, end\] with start <= end"):
        load_alert_free(path)


@pytest.mark.parametrize(
    "document, message",
    [
        ([{"type": "yawn", "start": 0, "end": 1}], r"field 'events': expected a list of \{type, start, end\} records"),
        ({"fps": 15}, r"field 'events': expected a list of \{type, start, end\} records"),
        ({"events": [["yawn", 0, 1]]}, r"record 0: expected an object with type, start, end"),
    ],
)
def test_an_event_file_of_the_wrong_shape_is_one_line(tmp_path, document, message):
    path = tmp_path / "events.json"
    path.write_text(json.dumps(document))
    with pytest.raises(DrowsyError, match=rf"events.json: {message}$"):
        load_events(path)
