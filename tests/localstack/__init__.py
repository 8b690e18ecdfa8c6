"""The project's local AWS stack: moto 5.2.5 in server mode with extensions (see README.md)."""

from .lambda_runtime import Invocation, LambdaFunction
from .router import Router, matches
from .stack import LocalStack

__all__ = ["LocalStack", "LambdaFunction", "Invocation", "Router", "matches"]
