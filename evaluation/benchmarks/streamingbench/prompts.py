"""StreamingBench prompt (THUNLP-MT/StreamingBench `src/benchmark/StreamingBench.py`); options are
already "A. "-prefixed in the annotation and rendered one per line."""

OFFICIAL = (
    "You are an advanced video question-answering AI assistant. You have been provided with some frames "
    "from the video and a multiple-choice question related to the video. Your task is to carefully analyze "
    "the video and provide the best answer to question, choosing from the four options provided. Respond "
    "with only the letter (A, B, C, or D) of the correct option.\n\nQuestion: {question}\n\nOptions:\n{options}"
    "\n\nThe best option is:"
)

TEMPLATES = {"official": OFFICIAL}
