from molmo_agent.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PointMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POINT_MODE_ONE: _ClassVar[PointMode]
    POINT_MODE_ALL: _ClassVar[PointMode]
    POINT_MODE_COUNT: _ClassVar[PointMode]
POINT_MODE_ONE: PointMode
POINT_MODE_ALL: PointMode
POINT_MODE_COUNT: PointMode

class PointRequest(_message.Message):
    __slots__ = ("images", "query", "mode", "depth", "intrinsics", "camera_to_base", "depth_window", "frame_id", "frame_timestamp")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    INTRINSICS_FIELD_NUMBER: _ClassVar[int]
    CAMERA_TO_BASE_FIELD_NUMBER: _ClassVar[int]
    DEPTH_WINDOW_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[_types_pb2.Image]
    query: str
    mode: PointMode
    depth: _types_pb2.DepthImage
    intrinsics: _types_pb2.CameraIntrinsics
    camera_to_base: _types_pb2.RigidTransform
    depth_window: int
    frame_id: str
    frame_timestamp: float
    def __init__(self, images: _Optional[_Iterable[_Union[_types_pb2.Image, _Mapping]]] = ..., query: _Optional[str] = ..., mode: _Optional[_Union[PointMode, str]] = ..., depth: _Optional[_Union[_types_pb2.DepthImage, _Mapping]] = ..., intrinsics: _Optional[_Union[_types_pb2.CameraIntrinsics, _Mapping]] = ..., camera_to_base: _Optional[_Union[_types_pb2.RigidTransform, _Mapping]] = ..., depth_window: _Optional[int] = ..., frame_id: _Optional[str] = ..., frame_timestamp: _Optional[float] = ...) -> None: ...

class PointResponse(_message.Message):
    __slots__ = ("points", "count", "text", "reason", "model_id", "timing", "frame_id", "frame_timestamp", "frames_dropped")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[_types_pb2.Point]
    count: int
    text: str
    reason: str
    model_id: str
    timing: _types_pb2.Timing
    frame_id: str
    frame_timestamp: float
    frames_dropped: int
    def __init__(self, points: _Optional[_Iterable[_Union[_types_pb2.Point, _Mapping]]] = ..., count: _Optional[int] = ..., text: _Optional[str] = ..., reason: _Optional[str] = ..., model_id: _Optional[str] = ..., timing: _Optional[_Union[_types_pb2.Timing, _Mapping]] = ..., frame_id: _Optional[str] = ..., frame_timestamp: _Optional[float] = ..., frames_dropped: _Optional[int] = ...) -> None: ...

class ActRequest(_message.Message):
    __slots__ = ("screenshot", "goal", "step", "history", "max_new_tokens")
    SCREENSHOT_FIELD_NUMBER: _ClassVar[int]
    GOAL_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    screenshot: _types_pb2.Image
    goal: str
    step: str
    history: _containers.RepeatedCompositeFieldContainer[_types_pb2.Action]
    max_new_tokens: int
    def __init__(self, screenshot: _Optional[_Union[_types_pb2.Image, _Mapping]] = ..., goal: _Optional[str] = ..., step: _Optional[str] = ..., history: _Optional[_Iterable[_Union[_types_pb2.Action, _Mapping]]] = ..., max_new_tokens: _Optional[int] = ...) -> None: ...

class ActResponse(_message.Message):
    __slots__ = ("action", "text", "reason", "model_id", "timing")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    action: _types_pb2.Action
    text: str
    reason: str
    model_id: str
    timing: _types_pb2.Timing
    def __init__(self, action: _Optional[_Union[_types_pb2.Action, _Mapping]] = ..., text: _Optional[str] = ..., reason: _Optional[str] = ..., model_id: _Optional[str] = ..., timing: _Optional[_Union[_types_pb2.Timing, _Mapping]] = ...) -> None: ...

class GenerationOptions(_message.Message):
    __slots__ = ("max_new_tokens", "temperature", "top_p", "stop_at_answer", "stop_at_coords")
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    STOP_AT_ANSWER_FIELD_NUMBER: _ClassVar[int]
    STOP_AT_COORDS_FIELD_NUMBER: _ClassVar[int]
    max_new_tokens: int
    temperature: float
    top_p: float
    stop_at_answer: bool
    stop_at_coords: bool
    def __init__(self, max_new_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., stop_at_answer: _Optional[bool] = ..., stop_at_coords: _Optional[bool] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("images", "prompt", "options")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[_types_pb2.Image]
    prompt: str
    options: GenerationOptions
    def __init__(self, images: _Optional[_Iterable[_Union[_types_pb2.Image, _Mapping]]] = ..., prompt: _Optional[str] = ..., options: _Optional[_Union[GenerationOptions, _Mapping]] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("text", "points", "model_id", "timing", "num_generated_tokens")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    NUM_GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    text: str
    points: _containers.RepeatedCompositeFieldContainer[_types_pb2.Point]
    model_id: str
    timing: _types_pb2.Timing
    num_generated_tokens: int
    def __init__(self, text: _Optional[str] = ..., points: _Optional[_Iterable[_Union[_types_pb2.Point, _Mapping]]] = ..., model_id: _Optional[str] = ..., timing: _Optional[_Union[_types_pb2.Timing, _Mapping]] = ..., num_generated_tokens: _Optional[int] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_image_pixels", "max_images_per_request", "max_query_chars", "max_new_tokens", "max_batch_size", "max_batch_wait_ms", "max_queue", "max_message_bytes", "max_text_tokens", "max_request_pixels")
    MAX_IMAGE_PIXELS_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGES_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_QUERY_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUEST_PIXELS_FIELD_NUMBER: _ClassVar[int]
    max_image_pixels: int
    max_images_per_request: int
    max_query_chars: int
    max_new_tokens: int
    max_batch_size: int
    max_batch_wait_ms: float
    max_queue: int
    max_message_bytes: int
    max_text_tokens: int
    max_request_pixels: int
    def __init__(self, max_image_pixels: _Optional[int] = ..., max_images_per_request: _Optional[int] = ..., max_query_chars: _Optional[int] = ..., max_new_tokens: _Optional[int] = ..., max_batch_size: _Optional[int] = ..., max_batch_wait_ms: _Optional[float] = ..., max_queue: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_text_tokens: _Optional[int] = ..., max_request_pixels: _Optional[int] = ...) -> None: ...

class Counters(_message.Message):
    __slots__ = ("requests", "errors_by_code", "batch_sizes", "queue_depth", "frames_dropped", "failed_model_calls", "split_batches")
    class ErrorsByCodeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class BatchSizesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_BY_CODE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZES_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    FAILED_MODEL_CALLS_FIELD_NUMBER: _ClassVar[int]
    SPLIT_BATCHES_FIELD_NUMBER: _ClassVar[int]
    requests: int
    errors_by_code: _containers.ScalarMap[str, int]
    batch_sizes: _containers.ScalarMap[int, int]
    queue_depth: int
    frames_dropped: int
    failed_model_calls: int
    split_batches: int
    def __init__(self, requests: _Optional[int] = ..., errors_by_code: _Optional[_Mapping[str, int]] = ..., batch_sizes: _Optional[_Mapping[int, int]] = ..., queue_depth: _Optional[int] = ..., frames_dropped: _Optional[int] = ..., failed_model_calls: _Optional[int] = ..., split_batches: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model_id", "family", "device", "dtype", "num_parameters", "limits", "counters", "server_version")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    NUM_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    family: str
    device: str
    dtype: str
    num_parameters: int
    limits: Limits
    counters: Counters
    server_version: str
    def __init__(self, model_id: _Optional[str] = ..., family: _Optional[str] = ..., device: _Optional[str] = ..., dtype: _Optional[str] = ..., num_parameters: _Optional[int] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., counters: _Optional[_Union[Counters, _Mapping]] = ..., server_version: _Optional[str] = ...) -> None: ...
