"""Extensions applied to moto inside the local stack's server process.

Each module patches one gap of moto 5.2.5 (see ../README.md). `apply_all()` must run
before the server starts serving; it is idempotent.
"""

_APPLIED = False


def apply_all() -> None:
    global _APPLIED
    if _APPLIED:
        return
    from . import codepipeline, ec2_spot, sfn, ssm

    sfn.apply()
    codepipeline.apply()
    ssm.apply()
    ec2_spot.apply()
    _APPLIED = True
