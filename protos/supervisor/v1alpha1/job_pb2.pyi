from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATUS_UNSPECIFIED: _ClassVar[JobStatus]
    JOB_STATUS_PENDING: _ClassVar[JobStatus]
    JOB_STATUS_META_SCHEDULED: _ClassVar[JobStatus]
    JOB_STATUS_SCHEDULED: _ClassVar[JobStatus]
    JOB_STATUS_RUNNING: _ClassVar[JobStatus]
    JOB_STATUS_CANCELLING: _ClassVar[JobStatus]
    JOB_STATUS_CANCELLED: _ClassVar[JobStatus]
    JOB_STATUS_FINISHED: _ClassVar[JobStatus]
    JOB_STATUS_FAILED: _ClassVar[JobStatus]
    JOB_STATUS_OUT_OF_CREDITS: _ClassVar[JobStatus]
    JOB_STATUS_PANICKED: _ClassVar[JobStatus]
JOB_STATUS_UNSPECIFIED: JobStatus
JOB_STATUS_PENDING: JobStatus
JOB_STATUS_META_SCHEDULED: JobStatus
JOB_STATUS_SCHEDULED: JobStatus
JOB_STATUS_RUNNING: JobStatus
JOB_STATUS_CANCELLING: JobStatus
JOB_STATUS_CANCELLED: JobStatus
JOB_STATUS_FINISHED: JobStatus
JOB_STATUS_FAILED: JobStatus
JOB_STATUS_OUT_OF_CREDITS: JobStatus
JOB_STATUS_PANICKED: JobStatus

class SetJobStatusRequest(_message.Message):
    __slots__ = ("name", "id", "duration", "status", "exit_code")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: int
    duration: int
    status: JobStatus
    exit_code: int
    def __init__(self, name: _Optional[str] = ..., id: _Optional[int] = ..., duration: _Optional[int] = ..., status: _Optional[_Union[JobStatus, str]] = ..., exit_code: _Optional[int] = ...) -> None: ...

class SetJobStatusResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
