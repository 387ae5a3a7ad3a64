"""The Chakra execution-trace schema, its file formats, validation and graph view.

``.et`` files written here open in MLCommons Chakra's tools and ASTRA-sim, and theirs open here;
attributes this project does not interpret survive a round trip.
"""

from trainsim.chakra_et._attrs import (
    RESERVED_ATTR_KINDS,
    AttrValue,
    attr_value,
    attrs_dict,
    get_attr,
    make_attr,
    set_attr,
)
from trainsim.chakra_et._capture import CaptureError, CaptureSession, capture
from trainsim.chakra_et._errors import (
    ChakraETError,
    ETFormatError,
    ETJSONError,
    ETValidationError,
    Problem,
)
from trainsim.chakra_et._graph import (
    DEFAULT_SCHEMA_VERSION,
    ETGraph,
    new_metadata,
    new_node,
    node_type_name,
)
from trainsim.chakra_et._io import from_json, iter_nodes, load, load_json, save, save_json, to_json
from trainsim.chakra_et._stream import MAX_MESSAGE_BYTES, ETReader, ETWriter
from trainsim.chakra_et._summary import ETSummary, summarize
from trainsim.chakra_et._validate import check, validate
from trainsim.chakra_et.convert import (
    Conversion,
    ConversionReport,
    ConversionWarning,
    TraceConversionError,
    convert_directory,
    convert_pytorch,
)
from trainsim.chakra_et.schema import (
    AttributeProto,
    CollectiveCommType,
    GlobalMetadata,
    Node,
    NodeType,
)

__all__ = [
    "DEFAULT_SCHEMA_VERSION",
    "MAX_MESSAGE_BYTES",
    "RESERVED_ATTR_KINDS",
    "AttrValue",
    "AttributeProto",
    "CaptureError",
    "CaptureSession",
    "ChakraETError",
    "CollectiveCommType",
    "Conversion",
    "ConversionReport",
    "ConversionWarning",
    "ETFormatError",
    "ETGraph",
    "ETJSONError",
    "ETReader",
    "ETSummary",
    "ETValidationError",
    "ETWriter",
    "GlobalMetadata",
    "Node",
    "NodeType",
    "Problem",
    "TraceConversionError",
    "attr_value",
    "attrs_dict",
    "capture",
    "check",
    "convert_directory",
    "convert_pytorch",
    "from_json",
    "get_attr",
    "iter_nodes",
    "load",
    "load_json",
    "make_attr",
    "new_metadata",
    "new_node",
    "node_type_name",
    "save",
    "save_json",
    "set_attr",
    "summarize",
    "to_json",
    "validate",
]
