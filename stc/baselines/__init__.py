"""Baseline token-compression methods, each a registered `stc.compression` method (one module each).

    random_drop   TOKENS   k random tokens per frame (the control every comparison needs)
    visionzip     TOKENS   dominant (attention) + contextual (merged) tokens, VisionZip (CVPR'25)
    vidcom2       TOKENS   frame uniqueness -> frame budgets -> in-frame selection, VidCom² (EMNLP'25)
    tome          VISION   bipartite soft matching inside the vision tower, ToMe (ICLR'23)

Use them through a compression spec (`compression=<name>` on the command line); see
docs/baselines/README.md for where each follows its released code, where a stream forces a difference,
and the budgets used for the paper's comparison (49 of 196 tokens per frame).
"""
