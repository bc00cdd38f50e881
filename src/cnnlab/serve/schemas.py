"""The JSON the API answers with, as pydantic models: they are what the OpenAPI page (/docs) shows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class OptionInfo(BaseModel):
    default: Any = Field(description="value used when the option is not sent (null: the method chooses)")
    help: str
    type: str = Field(description="int, float or bool")
    minimum: float | None = None


class MethodInfo(BaseModel):
    name: str
    summary: str = Field(description="one line: what the map is")
    units: str = Field(description="what one unit of the map means")
    signed: bool = Field(description="maps can be negative (evidence against the target)")
    layer: bool = Field(description="takes a 'layer' option (default: the last spatial feature map after its activation)")
    gradients: bool = Field(description="needs backward passes")
    class_specific: bool = Field(description="the map depends on the class asked for (false: one map for all)")
    slow: bool = Field(description="many passes per image")
    auto: bool = Field(description="the page computes it for every image (else when asked)")
    percentile: float = Field(description="maps are coloured from their minimum up to this percentile")
    options: dict[str, OptionInfo]


class Limits(BaseModel):
    max_bytes: int = Field(description="request body limit (413 above)")
    max_mib: float
    max_pixels: int = Field(description="pixel budget of an image (400 above)")


class ModelInfo(BaseModel):
    source: str = Field(description="run directory or pretrained:NAME")
    input_shape: list[int] = Field(description="[channels, height, width] the network takes")
    classes: list[str]
    device: str
    summary: str = Field(description="the layer table of `cnnlab summary`")
    layers: list[str] = Field(description="convolutional layers, for a method's 'layer' option")
    parameters: int
    limits: Limits
    methods: list[MethodInfo]


class ClassScore(BaseModel):
    index: int
    name: str
    probability: float


class Prediction(BaseModel):
    top: list[ClassScore] = Field(description="the most probable classes, most probable first")
    probabilities: list[float] = Field(description="every class's probability, by class index")
    width: int = Field(description="the image's width as read (upright, at most 2048 px on its longest side)")
    height: int
    image: str = Field(description="data: URL of the image as shown (PNG, at most 512 px on its longest side)")
    model_input: str = Field(description="data: URL of what the network takes (PNG at its input resolution)")


class ClassName(BaseModel):
    index: int
    name: str


class Explanation(BaseModel):
    method: str
    target: ClassName = Field(description="the class explained")
    options: dict[str, Any] = Field(description="the options used, beyond the method's defaults")
    units: str
    signed: bool
    shape: list[int] = Field(description="[height, width] of the raw map: the network's input resolution")
    minimum: float
    maximum: float
    heat: str = Field(description="data: URL of the coloured map (jet, PNG) at the shown image's size; drawn over "
                                  "the image at opacity a, it is render.overlay with alpha a")
    map: str = Field(description="base64 of the raw map as a float32 .npy file")
    seconds: float = Field(description="time the method took")


class Health(BaseModel):
    status: str
    running: int = Field(description="jobs on the model now (0 or 1)")
    waiting: int = Field(description="jobs admitted behind it")
    capacity: int = Field(description="jobs admitted at most; past it requests get 503 with Retry-After")


class Problem(BaseModel):
    detail: str = Field(description="one line: what was wrong and what is expected")
