"""Event files and event scoring: temporal IoU, one-to-one greedy matching, precision / recall / F1."""

import json

import pytest

from drowsy.errors import DrowsyError
from drowsy.events import (
    Event,
    event_table,
    false_alerts_per_hour,
    load_alert_free,
    load_events,
    match_events,
    score_events,
    temporal_iou,
    write_events,
)


def test_temporal_iou():
    assert temporal_iou(Event("yawn", 0, 2), Event("yawn", 1, 3)) == pytest.approx(1 / 3)
    assert temporal_iou(Event("yawn", 0, 2), Event("yawn", 0, 2)) == 1.0
    assert temporal_iou(Event("yawn", 0, 1), Event("yawn", 1, 2)) == 0.0  # touching is not overlapping
    assert temporal_iou(Event("yawn", 0, 1), Event("yawn", 5, 6)) == 0.0


def test_perfect_prediction_scores_one_per_type():
    truth = [Event("yawn", 1, 3), Event("phone", 2, 9), Event("yawn", 10, 12)]
    scores = score_events(list(truth), truth)
    assert list(scores) == ["yawn", "phone"]  # EVENT_TYPES order
    assert scores["yawn"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 2, "fp": 0, "fn": 0,
                              "latency_median": None, "latency_worst": None}


def test_matching_is_one_to_one():
    truth = [Event("yawn", 0, 2)]
    two_halves = [Event("yawn", 0, 1.1), Event("yawn", 0.9, 2)]  # each IoU >= 0.5 with the one truth
    assert score_events(two_halves, truth)["yawn"] == {
        "precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "tp": 1, "fp": 1, "fn": 0,
        "latency_median": None, "latency_worst": None}
    one_long = [Event("phone", 0, 10)]
    two_truths = [Event("phone", 0, 6), Event("phone", 6.5, 10)]
    scores = score_events(one_long, two_truths)["phone"]
    assert (scores["tp"], scores["fp"], scores["fn"]) == (1, 0, 1)


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
        "microsleep": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 0, "fn": 0,
                       "latency_median": None, "latency_worst": None}}


def test_dicts_are_accepted_and_files_round_trip(tmp_path):
    events = [{"type": "phone", "start": 2.0, "end": 4.5}, Event("blink", 0.5, 0.7)]
    path = write_events(tmp_path / "events.json", events, fps=15, frames=150)
    document = json.loads(path.read_text())
    assert (document["fps"], document["frames"], document["seconds"]) == (15, 150, 10.0)
    assert load_events(path) == [Event("blink", 0.5, 0.7), Event("phone", 2.0, 4.5)]  # sorted by start


@pytest.mark.parametrize("record, field", [
    ({"type": "nap", "start": 0, "end": 1}, "type"),
    ({"type": "yawn", "start": "0", "end": 1}, "start"),
    ({"type": "yawn", "start": 2, "end": 1}, "end"),
])
def test_malformed_event_file_names_record_and_field(tmp_path, record, field):
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"events": [{"type": "yawn", "start": 0, "end": 1}, record]}))
    with pytest.raises(DrowsyError, match=rf"events.json: record 1: field '{field}'"):
        load_events(path)


def test_event_table_lists_matches_misses_and_false_alarms():
    truth = [Event("yawn", 0, 2), Event("phone", 5, 9)]
    predicted = [Event("yawn", 0.1, 2), Event("yawn", 20, 21)]
    table = event_table(predicted, truth)
    assert table[["type", "outcome"]].values.tolist() == [
        ["yawn", "match"], ["yawn", "false alarm"], ["phone", "missed"]]
    assert table.loc[0, "iou"] == pytest.approx(0.95)


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
    scores = score_events([Event("yawn", 0, 2, 1.3), Event("yawn", 5, 7, 5.9)], [Event("yawn", 0, 2, 1.0),
                                                                                Event("yawn", 5, 7, 6.0)])
    assert scores["yawn"]["latency_median"] == pytest.approx(0.1) and scores["yawn"]["latency_worst"] == pytest.approx(0.3)


def test_false_alerts_per_hour_counts_alerts_inside_the_alert_free_stretches():
    found = [Event("yawn", 100.0, 102.0, 101.0), Event("blink", 200, 200.2), Event("phone", 3500, 3510, 3502),
             Event("distraction", 3599, 3605, 3602)]  # alerts at 101, 3502, 3602 s; the blink is no alert
    assert false_alerts_per_hour(found, [(0.0, 3600.0)]) == pytest.approx(2.0)  # 3602 s lies outside
    assert false_alerts_per_hour(found, [(0.0, 1800.0)]) == pytest.approx(2.0)  # one in half an hour
    assert false_alerts_per_hour(found, []) is None


def test_a_bad_alert_field_or_alert_free_stretch_is_one_line(tmp_path):
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"events": [{"type": "sleep", "start": 1, "end": 5, "alert": "soon"}]}))
    with pytest.raises(DrowsyError, match=r"record 0: field 'alert': must be a number of seconds, got 'soon'"):
        load_events(path)
    path.write_text(json.dumps({"events": [], "alert_free": [[5, 1]]}))
    with pytest.raises(DrowsyError, match=r"alert_free record 0: expected \[start, end\] with start <= end"):
        load_alert_free(path)
