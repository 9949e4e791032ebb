"""Write a small ONNX model (a list of nodes and their weights) for OpenCV's dnn.

OpenCV reads ONNX but cannot build a network from arrays in Python, and the
``onnx`` package (protobuf and all) would be a large dependency for a few
hundred bytes of structure. ONNX is protocol buffers, whose wire format is
small: a field is a key (field number and wire type) then a varint or a
length-prefixed payload. Only what :mod:`local.engine.mtcnn` needs is here:
float tensors, int and int-list attributes, named inputs and outputs whose
dimensions may be symbolic (any size at run time).

Field numbers are those of onnx/onnx.proto (ModelProto, GraphProto,
NodeProto, AttributeProto, TensorProto, ValueInfoProto, TypeProto).
"""
import numpy as np

IR_VERSION = 7
OPSET = 13
_FLOAT = 1          # TensorProto.DataType.FLOAT
_ATTR_INT, _ATTR_INTS = 2, 7


def _varint(n):
    n &= 0xFFFFFFFFFFFFFFFF          # negative int64s as protobuf writes them
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _int_field(number, value):
    return _varint(number << 3) + _varint(int(value))


def _bytes_field(number, payload):
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _str_field(number, text):
    return _bytes_field(number, text.encode())


def _tensor(name, array):
    array = np.ascontiguousarray(array, dtype="<f4")
    return (b"".join(_int_field(1, d) for d in array.shape) + _int_field(2, _FLOAT)
            + _str_field(8, name) + _bytes_field(9, array.tobytes()))


def _attribute(name, value):
    if isinstance(value, (int, np.integer)):
        return _str_field(1, name) + _int_field(20, _ATTR_INT) + _int_field(3, value)
    return (_str_field(1, name) + _int_field(20, _ATTR_INTS)
            + b"".join(_int_field(8, v) for v in value))


def node(op_type, inputs, outputs, **attributes):
    """One operator (e.g. ``node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3])``)."""
    return (b"".join(_str_field(1, i) for i in inputs)
            + b"".join(_str_field(2, o) for o in outputs)
            + _str_field(3, outputs[0]) + _str_field(4, op_type)
            + b"".join(_bytes_field(5, _attribute(k, v)) for k, v in attributes.items()))


def _value_info(name, dims):
    shape = b"".join(_bytes_field(1, _int_field(1, d) if isinstance(d, int) else _str_field(2, d))
                     for d in dims)
    tensor_type = _int_field(1, _FLOAT) + _bytes_field(2, shape)
    return _str_field(1, name) + _bytes_field(2, _bytes_field(1, tensor_type))


def model(nodes, weights, inputs, outputs):
    """The serialized model: ``nodes`` from :func:`node`, ``weights`` {name: array},
    ``inputs``/``outputs`` [(name, dims)] with a dim an int or a symbolic name."""
    graph = (b"".join(_bytes_field(1, n) for n in nodes) + _str_field(2, "graph")
             + b"".join(_bytes_field(5, _tensor(k, v)) for k, v in weights.items())
             + b"".join(_bytes_field(11, _value_info(n, d)) for n, d in inputs)
             + b"".join(_bytes_field(12, _value_info(n, d)) for n, d in outputs))
    opset = _str_field(1, "") + _int_field(2, OPSET)
    return _int_field(1, IR_VERSION) + _bytes_field(8, opset) + _bytes_field(7, graph)
