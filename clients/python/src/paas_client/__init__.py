"""PaaS Operator client: PaasClient(target, api_key) over gRPC, with the generated stubs.

The generated modules (paas.v1.*_pb2, google.api, google.rpc) live in paas_client/_gen/, which
is added to sys.path on import: they import each other by their proto package names.
"""

from __future__ import annotations

import os
import sys
from typing import Iterator, Optional, Sequence, Tuple

import grpc

_GEN = os.path.join(os.path.dirname(__file__), "_gen")
if _GEN not in sys.path:
    sys.path.append(_GEN)

from google.rpc import error_details_pb2  # noqa: E402
from paas.v1 import audit_pb2, audit_pb2_grpc  # noqa: E402
from paas.v1 import namespace_pb2, namespace_pb2_grpc  # noqa: E402
from paas.v1 import operation_pb2, operation_pb2_grpc  # noqa: E402
from paas.v1 import release_pb2, release_pb2_grpc  # noqa: E402

__all__ = [
    "PaasClient",
    "PaasError",
    "audit_pb2",
    "namespace_pb2",
    "operation_pb2",
    "release_pb2",
]

ERROR_DOMAIN = "paas.io"


class PaasError(Exception):
    """A failed call: the gRPC status code, its name, the message and the ErrorInfo reason."""

    def __init__(self, code: grpc.StatusCode, message: str, reason: Optional[str]):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.code_name = code.name
        self.message = message
        self.reason = reason

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> "PaasError":
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        details = err.details() if hasattr(err, "details") else str(err)
        return cls(code, details or "", _reason_of(err))


def _reason_of(err: grpc.RpcError) -> Optional[str]:
    """Reads the ErrorInfo reason from the grpc-status-details-bin trailer (a google.rpc.Status)."""
    trailers = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    for key, value in trailers or ():
        if key != "grpc-status-details-bin":
            continue
        status = _Status()
        status.ParseFromString(value)
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info) and info.domain == ERROR_DOMAIN:
                return info.reason
    return None


def _status_class():
    # google.rpc.Status is not among the generated files; build it from its descriptor.
    from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

    pool = descriptor_pool.Default()
    try:
        desc = pool.FindMessageTypeByName("google.rpc.Status")
    except KeyError:
        f = descriptor_pb2.FileDescriptorProto(name="paas_client/google_rpc_status.proto", package="google.rpc")
        f.dependency.append(any_pb2.DESCRIPTOR.name)
        m = f.message_type.add(name="Status")
        m.field.add(name="code", number=1, type=5, label=1)
        m.field.add(name="message", number=2, type=9, label=1)
        m.field.add(name="details", number=3, type=11, label=3, type_name=".google.protobuf.Any")
        pool.Add(f)
        desc = pool.FindMessageTypeByName("google.rpc.Status")
    return message_factory.GetMessageClass(desc)


_Status = _status_class()

Metadata = Sequence[Tuple[str, str]]


class _Stub:
    """Wraps a generated stub: the key as metadata, a default deadline, PaasError for failures."""

    def __init__(self, stub: object, metadata: Metadata, timeout: Optional[float]):
        self._stub = stub
        self._metadata = metadata
        self._timeout = timeout

    def __getattr__(self, name: str):
        method = getattr(self._stub, name)

        def call(request, timeout: Optional[float] = None, metadata: Metadata = ()):
            try:
                result = method(request, timeout=timeout or self._timeout, metadata=tuple(self._metadata) + tuple(metadata))
            except grpc.RpcError as err:
                raise PaasError.from_rpc_error(err) from None
            if isinstance(result, grpc.Call) and hasattr(result, "__iter__") and not hasattr(result, "SerializeToString"):
                return _iterate(result)
            return result

        return call


def _iterate(stream) -> Iterator:
    try:
        for message in stream:
            yield message
    except grpc.RpcError as err:
        raise PaasError.from_rpc_error(err) from None
    finally:
        stream.cancel()


class PaasClient:
    """PaasClient(target, api_key): target is host:port of the service's one port (gRPC, cleartext)."""

    def __init__(self, target: str, api_key: str, timeout: Optional[float] = 60.0, channel: Optional[grpc.Channel] = None):
        self.channel = channel or grpc.insecure_channel(target)
        md = (("x-api-key", api_key),)
        self.releases = _Stub(release_pb2_grpc.ReleaseServiceStub(self.channel), md, timeout)
        self.namespaces = _Stub(namespace_pb2_grpc.NamespaceServiceStub(self.channel), md, timeout)
        self.operations = _Stub(operation_pb2_grpc.OperationServiceStub(self.channel), md, timeout)
        self.audit = _Stub(audit_pb2_grpc.AuditServiceStub(self.channel), md, timeout)
        self._health = self.channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda _: b"",
            response_deserializer=_serving_status,
        )
        self._timeout = timeout

    def health(self, timeout: Optional[float] = None) -> str:
        """grpc.health.v1.Health/Check of the whole server: "SERVING", "NOT_SERVING", …"""
        try:
            return self._health(None, timeout=timeout or self._timeout)
        except grpc.RpcError as err:
            raise PaasError.from_rpc_error(err) from None

    def watch_release_status(self, namespace: str, name: str, timeout: Optional[float] = None) -> Iterator:
        """WatchReleaseStatus as an iterator (no deadline unless given)."""
        return self.releases.WatchReleaseStatus(
            release_pb2.WatchReleaseStatusRequest(namespace=namespace, name=name), timeout=timeout or 1e9
        )

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "PaasClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_SERVING = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _serving_status(data: bytes) -> str:
    """Decodes grpc.health.v1.HealthCheckResponse (field 1, an enum varint) without its stubs."""
    if len(data) >= 2 and data[0] == 0x08:
        return _SERVING.get(data[1], str(data[1]))
    return "UNKNOWN"
