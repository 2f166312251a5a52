"""Loaders on the hand-written fixtures (every schema) and malformed files (one clear error each)."""

import json
from pathlib import Path

import pytest

from evaluation.config import BenchmarkConfig
from evaluation.registry import get_benchmark
from evaluation.types import AnnotationError

F = Path(__file__).resolve().parents[1] / "fixtures"


def load(name, rel, **cfg):
    bench = get_benchmark(name)
    config = BenchmarkConfig(name=name, scoring=bench.scorings[0], prompt=bench.prompts[0], **cfg)
    loaded = bench.load(F / rel if not Path(rel).is_absolute() else Path(rel), config, F)
    assert loaded.rejected == [], loaded.rejected
    return loaded.samples


def load_all(name, rel, **cfg):
    bench = get_benchmark(name)
    config = BenchmarkConfig(name=name, scoring=bench.scorings[0], prompt=bench.prompts[0], **cfg)
    return bench.load(Path(rel), config, F)


def test_ovobench_official_expands_forward_probes():
    samples = {s.id: s for s in load("ovobench", "ovo_bench/ovo_bench_mini.json")}
    assert len(samples) == 6 + 3 + 2 + 4
    assert samples["3"].gold == "A" and samples["3"].options[0] == "select a waypoint" and samples["3"].category == "backward"
    assert samples["5"].query_time == 18.5 and samples["5"].task == "OJR" and samples["5"].precut == "5.mp4"
    assert (samples["6_2"].gold, samples["6_2"].query_time, samples["6_2"].group) == ("3", 16.0, "6")
    assert samples["6_2"].question == "How many times did they clapping hands?"
    assert (samples["7_0"].gold, samples["7_1"].gold, samples["7_1"].question) == ("Yes", "No", "close the box")
    assert [samples[f"8_{i}"].gold for i in range(4)] == ["No", "No", "Yes", "Yes"]
    assert samples["8_3"].precut == "8_3.mp4" and samples["8_3"].category == "forward"


def test_ovobench_prompt_is_official_template():
    bench = get_benchmark("ovobench")
    cfg = BenchmarkConfig(name="ovobench")
    samples = {s.id: s for s in load("ovobench", "ovo_bench/ovo_bench_mini.json")}
    mcq = bench.build_query(samples["3"], cfg)
    assert "Options:\nA. select a waypoint; B. close the game; C. open the inventory;\n\nRespond only" in mcq.prompt
    assert mcq.use_chat_template is False and mcq.retrieval_text == mcq.prompt and len(mcq.options) == 3
    assert "How many times did they clapping hands?" in bench.build_query(samples["6_0"], cfg).prompt
    ssr = bench.build_query(samples["7_0"], cfg)
    assert "\nopen the box\n" in ssr.prompt and ssr.options == ()


def test_streamingbench_both_question_files():
    samples = load("streamingbench", "streamingbench/questions_real_mini.json")
    assert [s.id for s in samples] == ["0_0", "0_1", "1_0", "1_1", "2_0"]
    assert [s.query_time for s in samples] == [5.0, 12.0, 8.0, 15.0, 18.0]
    assert samples[2].gold == "A" and samples[2].options[0] == "A. Turning left." and samples[4].task == "Text-Rich Understanding"
    stream = load("streamingbench", "streamingbench/questions_real_stream_mini.json")
    assert [(s.query_time, s.gold) for s in stream] == [(4.0, "B"), (9.0, "D")]
    query = get_benchmark("streamingbench").build_query(samples[0], BenchmarkConfig(name="streamingbench"))
    assert query.prompt.endswith("Options:\nA. Washed a pan.\nB. Opened the fridge.\nC. Sliced a tomato.\nD. Left the room.\n\nThe best option is:")


def test_mlvu_rekv_and_official_folder():
    rekv = load("mlvu", "mlvu/dev_mc_mini.json")
    assert [(s.id, s.gold, s.task) for s in rekv] == [("movie_a_0", "B", "plotQA"), ("movie_a_1", "A", "plotQA"), ("count_b_0", "D", "count")]
    official = load("mlvu", "mlvu/json")
    assert [(s.video, s.gold) for s in official] == [("1_plotQA/movie_a.mp4", "B"), ("1_plotQA/movie_a.mp4", "A")]
    query = get_benchmark("mlvu").build_query(rekv[0], BenchmarkConfig(name="mlvu", scoring="stc_release", prompt="rekv", chat_template=True))
    assert query.prompt == "Question: What colour is the front door?\nOptions:\n(A) Red\n(B) Blue\n(C) Green\n(D) White\nOnly give the best option."
    assert query.answer_prefix == "Best option: (" and query.retrieval_text == "What colour is the front door?"


def test_egoschema_rekv_official_and_answers_file():
    rekv = load("egoschema", "egoschema/subset_mini.json")
    assert [(s.id, s.gold) for s in rekv] == [("uid-1", "C"), ("uid-2", "B"), ("uid-3", "")]
    official = load("egoschema", "egoschema/questions_mini.json", answers="egoschema/subset_answers_mini.json")
    assert [(s.id, s.video, s.gold, len(s.options)) for s in official] == [("uid-1", "uid-1.mp4", "C", 5), ("uid-3", "uid-3.mp4", "", 5)]


def test_videomme_official_rows_and_rekv():
    rows = load("videomme", "videomme/videomme_rows_mini.json")
    assert [(s.id, s.video, s.category, s.gold) for s in rows] == [("001-1", "vidS.mp4", "short", "A"),
                                                                   ("301-1", "vidM.mp4", "medium", "B"),
                                                                   ("601-1", "vidL.mp4", "long", "C")]
    assert rows[1].meta["domain"] == "Sports Competition" and rows[2].task == "Information Synopsis"
    rekv = load("videomme", "videomme/videomme_rekv_mini.json")
    assert [(s.id, s.category, s.gold) for s in rekv] == [("001-1", "short", "A"), ("601-1", "long", "C")]
    query = get_benchmark("videomme").build_query(rekv[0], BenchmarkConfig(name="videomme", scoring="official", prompt="rekv"))
    assert "(A) A. 3." in query.prompt  # ReKV's double prefix, kept for parity


def test_videomme_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    rows = json.loads((F / "videomme/videomme_rows_mini.json").read_text())
    pd.DataFrame(rows).to_parquet(tmp_path / "test.parquet")
    samples = load("videomme", str(tmp_path / "test.parquet"))
    assert [s.gold for s in samples] == ["A", "B", "C"] and samples[0].options[3] == "D. 8."


def _broken(tmp_path, rel, mutate):
    data = json.loads((F / rel).read_text())
    mutate(data)
    path = tmp_path / Path(rel).name
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("name, rel, mutate, field_name", [
    ("ovobench", "ovo_bench/ovo_bench_mini.json", lambda d: d[1].pop("options"), "options"),
    ("ovobench", "ovo_bench/ovo_bench_mini.json", lambda d: d[0].update(gt=7), "gt"),
    ("ovobench", "ovo_bench/ovo_bench_mini.json", lambda d: d[6]["test_info"][1].pop("count"), "count"),
    ("ovobench", "ovo_bench/ovo_bench_mini.json", lambda d: d[2].update(task="XYZ"), "task"),
    ("streamingbench", "streamingbench/questions_real_mini.json", lambda d: d[1]["questions"][0].update(time_stamp="8s"), "time_stamp"),
    ("streamingbench", "streamingbench/questions_real_mini.json", lambda d: d[0]["questions"][1].update(answer="E"), "answer"),
    ("mlvu", "mlvu/dev_mc_mini.json", lambda d: d[0]["conversations"][0].update(answer="Purple"), "answer"),
    ("egoschema", "egoschema/subset_mini.json", lambda d: d[1]["conversations"][0].update(answer=9), "answer"),
    ("videomme", "videomme/videomme_rows_mini.json", lambda d: d[2].update(duration="huge"), "duration"),
    ("videomme", "videomme/videomme_rows_mini.json", lambda d: d[0].update(realtime=None) or d[0].pop("videoID"), "videoID"),
])
def test_malformed_record_is_rejected_with_file_record_and_field(tmp_path, name, rel, mutate, field_name):
    """One bad record never aborts: it is rejected (named: file, 1-based record, field), the rest load."""
    whole = load(name, rel)
    path = _broken(tmp_path, rel, mutate)
    loaded = load_all(name, path)
    assert len(loaded.rejected) == 1, loaded.rejected
    rejected = loaded.rejected[0]
    assert path in rejected.message and f"field {field_name!r}" in rejected.message and "record " in rejected.where
    assert rejected.reason.startswith(f"field {field_name!r}")
    assert 0 < len(whole) - len(loaded.samples) <= 4  # only the broken record's samples are gone


@pytest.mark.parametrize("name, rel", [("ovobench", "ovo_bench/ovo_bench_mini.json"),
                                       ("streamingbench", "streamingbench/questions_real_mini.json"),
                                       ("videomme", "videomme/videomme_rows_mini.json")])
def test_wrong_top_level_shape_still_stops(tmp_path, name, rel):
    path = tmp_path / "shape.json"
    path.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(AnnotationError, match=r"shape\.json.*<top level>"):
        load_all(name, str(path))


def test_record_numbers_are_one_based(tmp_path):
    path = _broken(tmp_path, "streamingbench/questions_real_mini.json", lambda d: d[1]["questions"][0].update(time_stamp="8s"))
    rejected = load_all("streamingbench", path).rejected[0]
    assert rejected.where == "record 2, question 1" and "'8s'" in rejected.message


def test_streamingbench_timestamp_shapes():
    from evaluation.benchmarks.streamingbench.task import parse_timestamp

    assert parse_timestamp("00:01:05", "f", 0) == 65 and parse_timestamp("1:02:03", "f", 0) == 3723
    assert parse_timestamp("00:01:5", "f", 0) == 65   # HH:MM:S as in the released files
    assert parse_timestamp("02:05", "f", 0) == 125     # MM:SS
    for garbage in ("", "12", "1:2:3:4", "ab:cd", "00:01:05 PM", "-1:00"):
        with pytest.raises(AnnotationError, match="time_stamp"):
            parse_timestamp(garbage, "f", 0)


def test_invalid_json_and_missing_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[{\"id\": 0,")
    with pytest.raises(AnnotationError, match=r"bad\.json.*invalid JSON"):
        load("ovobench", str(bad))
    with pytest.raises(AnnotationError, match=r"nope\.json.*not found"):
        load("ovobench", str(tmp_path / "nope.json"))
