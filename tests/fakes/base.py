"""The part every fake AWS client shares: it speaks the real service's shapes.

Each call is checked against botocore's own service model, the request on the
way in and the answer on the way out, so the code under test cannot drift
from the real API while the test runs against a stand-in. A test can make the
next call of an operation fail once with an AWS error code.
"""
import functools

import botocore.session
from botocore.exceptions import ClientError
from botocore.validate import validate_parameters


@functools.lru_cache(maxsize=None)
def service_model(service):
    return botocore.session.get_session().get_service_model(service)


def aws_error(code, message="injected", operation="Fake"):
    """The ``ClientError`` boto3 raises for an AWS error answer."""
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


class ModelCheckedFake:
    """Base of the fake clients: ``requests`` holds (operation, params) in call order."""

    service = None  # botocore's service name, e.g. "rekognition"

    def __init__(self):
        self.requests = []
        self.fail = {}  # operation name -> error code its next call raises (once)

    @property
    def operations(self):
        """The operation names called so far, in order."""
        return [operation for operation, _ in self.requests]

    def called(self, operation):
        """The params of every call of ``operation``, in order."""
        return [params for name, params in self.requests if name == operation]

    def _enter(self, operation, params):
        """Check and record a request; raise the error injected for it, if any."""
        model = service_model(self.service).operation_model(operation)
        validate_parameters(params, model.input_shape)
        self.requests.append((operation, params))
        code = self.fail.pop(operation, None)
        if code:
            raise aws_error(code, operation=operation)

    def _answer(self, operation, answer):
        """Check an answer against the operation's output shape, and return it."""
        model = service_model(self.service).operation_model(operation)
        validate_parameters(answer, model.output_shape)
        return answer
