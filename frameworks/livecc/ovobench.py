"""LiveCC's own OVO-Bench protocol (`evaluation/ovobench/transfer_annotation_format.py` and
`distributed_evaluate_ovobench.py` of showlab/livecc), as pure functions on the official annotation.

Where it differs from this project's OVO-Bench benchmark (`evaluation/benchmarks/ovobench`, the official
OVO-Bench prompts used for every host):
  * prompts: MCQ = question + "\\n" + options as "A. ..." lines + "\\nPlease select the correct answer.";
    REC / SSR / CRR have LiveCC's own wording (below), not the official OVO templates;
  * CRR clips start at the record's `ask_time` (official: 0), every clip lasts at least 1 s
    (`video_end = max(video_start + 1, video_end)`);
  * answers: the restricted argmax over the 17 tokens (the host's `answer_mode: restricted`), scored by
    exact prefix match `response[:len(answer)] == answer` (a count of 10 can never be predicted);
  * task accuracy = pooled mean over items (forward tasks pooled over probes); category = mean of tasks.
Item ids are "<record id>" (MCQ) and "<record id>_<probe>" (forward probes; upstream reuses the record id).
`scripts/livecc_ovobench_native.py` runs these items through the LiveCC host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

CHOICE_LETTERS = "ABCDE"
REALTIME = ("STU", "OJR", "ATR", "ACR", "OCR", "FPD")
BACKWARD = ("EPM", "ASI", "HLD")
FORWARD = ("REC", "SSR", "CRR")
MCQ_SUFFIX = "\nPlease select the correct answer."

CRR_PROMPT = (
    "You're responsible of answering questions based on the video content. The following question are relevant "
    "to the latest frames, i.e. the end of the video.\n\n{question}\n\nDecide whether existing visual content, "
    "especially latest frames, i.e frames that near the end of the video, provide enough information for answering "
    "the question.\nReturn \"Yes\" if existing visual content has provided enough information;\nReturn \"No\" otherwise."
)
REC_PROMPT = (
    "You're watching a video in which people may perform a certaintype of action repetitively. The person performing "
    "are referred to as 'they' in the following statement. You're task is to count how many times did different "
    "people in the video perform this kind of action in total.\nNow, answer the following question:\n\n"
    "How many times did they {activity}?\n\nYour response type should be INT, for example, 0/1/2/3.."
)
SSR_PROMPT = (
    "You're watching a tutorial video which contain a sequential of steps. The following is one step from the whole "
    "procedures:\n\n{step}\n\nYour task is to decide: Is the man/woman in the video currently carrying out this step?"
    "\nReturn \"Yes\" if the man/woman in the video is currently performing this step;\nReturn \"No\" if not."
)


@dataclass(frozen=True)
class LiveCCItem:
    """One scored LiveCC OVO-Bench item: the clip [start, end] of `video` and the user text."""

    id: str
    task: str
    video: str
    start: float
    end: float
    prompt: str
    answer: str

    @property
    def category(self) -> str:
        return "realtime" if self.task in REALTIME else "backward" if self.task in BACKWARD else "forward"


def _field(record: dict, name: str, index: int):
    if name not in record:
        raise ValueError(f"OVO-Bench record {index} (id {record.get('id')!r}): missing field {name!r}")
    return record[name]


def expand(records: Iterable[dict]) -> list[LiveCCItem]:
    """Official `ovo_bench_new.json` records -> LiveCC items (one per MCQ record, one per forward probe)."""
    items: list[LiveCCItem] = []
    for index, record in enumerate(records):
        task, rid, video = _field(record, "task", index), _field(record, "id", index), _field(record, "video", index)
        if task in FORWARD:
            probes = _field(record, "test_info", index)
            start = float(_field(record, "ask_time", index)) if task == "CRR" else 0.0
            for i, probe in enumerate(probes):
                if task == "CRR":
                    prompt, answer = CRR_PROMPT.format(question=_field(record, "question", index)), ("No", "Yes")[probe["type"]]
                elif task == "REC":
                    prompt, answer = REC_PROMPT.format(activity=_field(record, "activity", index)), str(probe["count"])
                else:
                    prompt, answer = SSR_PROMPT.format(step=probe["step"]), ("No", "Yes")[probe["type"]]
                end = max(start + 1.0, float(probe["realtime"]))
                items.append(LiveCCItem(f"{rid}_{i}", task, video, start, end, prompt, answer))
        elif task in REALTIME + BACKWARD:
            options = [f"{CHOICE_LETTERS[i]}. {text}" for i, text in enumerate(_field(record, "options", index))]
            prompt = _field(record, "question", index) + "\n" + "\n".join(options) + MCQ_SUFFIX
            end = max(1.0, float(_field(record, "realtime", index)))
            items.append(LiveCCItem(str(rid), task, video, 0.0, end, prompt, CHOICE_LETTERS[_field(record, "gt", index)]))
        else:
            raise ValueError(f"OVO-Bench record {index} (id {rid!r}): unknown task {task!r}")
    return items


def correct(response: str, answer: str) -> bool:
    """LiveCC's rule: exact prefix match."""
    return response[:len(answer)] == answer


def score(results: Sequence[tuple[LiveCCItem, str]]) -> dict:
    """Pooled task accuracy, category = mean of its task accuracies, overall = mean of the categories."""
    tasks: dict[str, list[bool]] = {}
    for item, response in results:
        tasks.setdefault(item.task, []).append(correct(response, item.answer))
    task_acc = {task: sum(hits) / len(hits) for task, hits in tasks.items()}
    categories = {}
    for name, members in (("realtime", REALTIME), ("backward", BACKWARD), ("forward", FORWARD)):
        present = [task_acc[t] for t in members if t in task_acc]
        if present:
            categories[name] = sum(present) / len(present)
    overall = sum(categories.values()) / len(categories) if categories else 0.0
    return {"tasks": task_acc, "categories": categories, "overall": overall, "items": len(results)}
