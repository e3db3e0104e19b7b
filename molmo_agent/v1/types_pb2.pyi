from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PixelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIXEL_FORMAT_UNSPECIFIED: _ClassVar[PixelFormat]
    PIXEL_FORMAT_RGB8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_BGR8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_MONO8: _ClassVar[PixelFormat]

class DepthEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPTH_ENCODING_UNSPECIFIED: _ClassVar[DepthEncoding]
    DEPTH_ENCODING_UINT16_MM: _ClassVar[DepthEncoding]
    DEPTH_ENCODING_FLOAT32_M: _ClassVar[DepthEncoding]

class ActionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_TYPE_UNSPECIFIED: _ClassVar[ActionType]
    ACTION_TYPE_CLICK: _ClassVar[ActionType]
    ACTION_TYPE_LONG_PRESS: _ClassVar[ActionType]
    ACTION_TYPE_SCROLL: _ClassVar[ActionType]
    ACTION_TYPE_INPUT_TEXT: _ClassVar[ActionType]
    ACTION_TYPE_OPEN_APP: _ClassVar[ActionType]
    ACTION_TYPE_NAVIGATE_HOME: _ClassVar[ActionType]
    ACTION_TYPE_NAVIGATE_BACK: _ClassVar[ActionType]
    ACTION_TYPE_WAIT: _ClassVar[ActionType]
    ACTION_TYPE_DOUBLE_CLICK: _ClassVar[ActionType]
    ACTION_TYPE_RIGHT_CLICK: _ClassVar[ActionType]
    ACTION_TYPE_DRAG: _ClassVar[ActionType]
    ACTION_TYPE_HOTKEY: _ClassVar[ActionType]
    ACTION_TYPE_TYPE: _ClassVar[ActionType]
    ACTION_TYPE_DONE: _ClassVar[ActionType]
PIXEL_FORMAT_UNSPECIFIED: PixelFormat
PIXEL_FORMAT_RGB8: PixelFormat
PIXEL_FORMAT_BGR8: PixelFormat
PIXEL_FORMAT_MONO8: PixelFormat
DEPTH_ENCODING_UNSPECIFIED: DepthEncoding
DEPTH_ENCODING_UINT16_MM: DepthEncoding
DEPTH_ENCODING_FLOAT32_M: DepthEncoding
ACTION_TYPE_UNSPECIFIED: ActionType
ACTION_TYPE_CLICK: ActionType
ACTION_TYPE_LONG_PRESS: ActionType
ACTION_TYPE_SCROLL: ActionType
ACTION_TYPE_INPUT_TEXT: ActionType
ACTION_TYPE_OPEN_APP: ActionType
ACTION_TYPE_NAVIGATE_HOME: ActionType
ACTION_TYPE_NAVIGATE_BACK: ActionType
ACTION_TYPE_WAIT: ActionType
ACTION_TYPE_DOUBLE_CLICK: ActionType
ACTION_TYPE_RIGHT_CLICK: ActionType
ACTION_TYPE_DRAG: ActionType
ACTION_TYPE_HOTKEY: ActionType
ACTION_TYPE_TYPE: ActionType
ACTION_TYPE_DONE: ActionType

class RawImage(_message.Message):
    __slots__ = ("width", "height", "stride", "format", "data")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    STRIDE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    stride: int
    format: PixelFormat
    data: bytes
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., stride: _Optional[int] = ..., format: _Optional[_Union[PixelFormat, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("encoded", "raw")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    raw: RawImage
    def __init__(self, encoded: _Optional[bytes] = ..., raw: _Optional[_Union[RawImage, _Mapping]] = ...) -> None: ...

class DepthImage(_message.Message):
    __slots__ = ("width", "height", "stride", "encoding", "data")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    STRIDE_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    stride: int
    encoding: DepthEncoding
    data: bytes
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., stride: _Optional[int] = ..., encoding: _Optional[_Union[DepthEncoding, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class CameraIntrinsics(_message.Message):
    __slots__ = ("fx", "fy", "cx", "cy", "distortion")
    FX_FIELD_NUMBER: _ClassVar[int]
    FY_FIELD_NUMBER: _ClassVar[int]
    CX_FIELD_NUMBER: _ClassVar[int]
    CY_FIELD_NUMBER: _ClassVar[int]
    DISTORTION_FIELD_NUMBER: _ClassVar[int]
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, fx: _Optional[float] = ..., fy: _Optional[float] = ..., cx: _Optional[float] = ..., cy: _Optional[float] = ..., distortion: _Optional[_Iterable[float]] = ...) -> None: ...

class RigidTransform(_message.Message):
    __slots__ = ("matrix",)
    MATRIX_FIELD_NUMBER: _ClassVar[int]
    matrix: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, matrix: _Optional[_Iterable[float]] = ...) -> None: ...

class Vec3(_message.Message):
    __slots__ = ("x", "y", "z")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    z: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., z: _Optional[float] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y", "x_norm", "y_norm", "label", "image_index", "object_id", "timestamp", "camera_xyz", "base_xyz", "depth_note")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    X_NORM_FIELD_NUMBER: _ClassVar[int]
    Y_NORM_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_INDEX_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CAMERA_XYZ_FIELD_NUMBER: _ClassVar[int]
    BASE_XYZ_FIELD_NUMBER: _ClassVar[int]
    DEPTH_NOTE_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    x_norm: float
    y_norm: float
    label: str
    image_index: int
    object_id: int
    timestamp: float
    camera_xyz: Vec3
    base_xyz: Vec3
    depth_note: str
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., x_norm: _Optional[float] = ..., y_norm: _Optional[float] = ..., label: _Optional[str] = ..., image_index: _Optional[int] = ..., object_id: _Optional[int] = ..., timestamp: _Optional[float] = ..., camera_xyz: _Optional[_Union[Vec3, _Mapping]] = ..., base_xyz: _Optional[_Union[Vec3, _Mapping]] = ..., depth_note: _Optional[str] = ...) -> None: ...

class Action(_message.Message):
    __slots__ = ("type", "x", "y", "x2", "y2", "direction", "text", "app_name", "keys", "amount")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    APP_NAME_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    type: ActionType
    x: float
    y: float
    x2: float
    y2: float
    direction: str
    text: str
    app_name: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    amount: int
    def __init__(self, type: _Optional[_Union[ActionType, str]] = ..., x: _Optional[float] = ..., y: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ..., direction: _Optional[str] = ..., text: _Optional[str] = ..., app_name: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ..., amount: _Optional[int] = ...) -> None: ...

class Timing(_message.Message):
    __slots__ = ("queued_ms", "decode_ms", "preprocess_ms", "model_ms", "parse_ms", "total_ms", "batch_size")
    QUEUED_MS_FIELD_NUMBER: _ClassVar[int]
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    PREPROCESS_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_MS_FIELD_NUMBER: _ClassVar[int]
    PARSE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    queued_ms: float
    decode_ms: float
    preprocess_ms: float
    model_ms: float
    parse_ms: float
    total_ms: float
    batch_size: int
    def __init__(self, queued_ms: _Optional[float] = ..., decode_ms: _Optional[float] = ..., preprocess_ms: _Optional[float] = ..., model_ms: _Optional[float] = ..., parse_ms: _Optional[float] = ..., total_ms: _Optional[float] = ..., batch_size: _Optional[int] = ...) -> None: ...
