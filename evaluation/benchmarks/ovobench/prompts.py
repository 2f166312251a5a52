"""OVO-Bench prompt templates (official: JoeLeelyf/OVO-Bench `constant.py`, also used by STC's
ReKV wrapper). Options are rendered on ONE line: "A. x; B. y;" as upstream does."""

MCQ = (
    "Question: {question}\nOptions:\n{options}\n\n"
    "Respond only with the letter corresponding to your chosen option (e.g., A, B, C). \n"
    "Do not include any additional text or explanation in your response."
)

REC = (
    "You're watching a video in which people may perform a certain type of action repetively. \n"
    "The person performing this kind of action are referred to as 'they' in the following statement.\n"
    "You're task is to count how many times have different people in the video perform this kind of action in total.\n"
    "One complete motion counts as one. \n"
    "Now, answer the following question: How many times did they {activity}?\n"
    "Provide your answer as a single number (e.g., 0, 1, 2, 3…) indicating the total count.\n"
    "Do not include any additional text or explanation in your response."
)

SSR = (
    "You're watching a tutorial video which contain a sequential of steps. \n"
    "The following is one step from the whole procedures: \n"
    "{step}\n"
    "Your task is to determine if the man or woman in the video is currently performing this step.\n"
    "Answer only with “Yes” or “No”.\n"
    "Do not include any additional text or explanation in your response."
)

CRR = (
    "You're responsible of answering questions based on the video content. \n"
    "The following question are relevant to the latest frames, i.e. the end of the video.\n"
    "{question}\n"
    "Decide whether existing visual content, especially latest frames, i.e. frames that near the end of "
    "the video, provide enough information for answering the question.\n"
    "Answer only with “Yes” or “No”.\n"
    "Do not include any additional text or explanation in your response."
)

TEMPLATES = {"official": {"MCQ": MCQ, "REC": REC, "SSR": SSR, "CRR": CRR}}
