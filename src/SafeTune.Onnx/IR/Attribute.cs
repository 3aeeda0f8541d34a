using Onnx;

namespace SafeTune.Onnx;

/// <summary>The kind of an attribute's value; numbers match <c>AttributeProto.AttributeType</c>.</summary>
public enum AttributeKind
{
    /// <summary>Not set.</summary>
    Undefined = 0,
    /// <summary>A 32-bit float.</summary>
    Float = 1,
    /// <summary>An int64.</summary>
    Int = 2,
    /// <summary>A byte string.</summary>
    String = 3,
    /// <summary>A constant tensor, with its data.</summary>
    Tensor = 4,
    /// <summary>A subgraph.</summary>
    Graph = 5,
    /// <summary>A sparse tensor (kept as read).</summary>
    SparseTensor = 11,
    /// <summary>A type (kept as read).</summary>
    TypeProto = 13,
    /// <summary>A list of 32-bit floats.</summary>
    Floats = 6,
    /// <summary>Int64s.</summary>
    Ints = 7,
    /// <summary>Byte strings.</summary>
    Strings = 8,
    /// <summary>A list of constant tensors.</summary>
    Tensors = 9,
    /// <summary>Subgraphs.</summary>
    Graphs = 10,
    /// <summary>Sparse tensors (kept as read).</summary>
    SparseTensors = 12,
    /// <summary>Types (kept as read).</summary>
    TypeProtos = 14,
}

/// <summary>A node attribute. Subgraph attributes hold <see cref="Onnx.Graph"/> objects in the IR.</summary>
public sealed class Attribute
{
    /// <summary>The attribute name.</summary>
    public required string Name { get; init; }

    /// <summary>The kind of value.</summary>
    public required AttributeKind Kind { get; init; }

    /// <summary>A float value.</summary>
    public float Float { get; init; }

    /// <summary>An int value.</summary>
    public long Int { get; init; }

    /// <summary>A byte-string value.</summary>
    public byte[] Bytes { get; init; } = [];

    /// <summary>A tensor value.</summary>
    public TensorData? Tensor { get; init; }

    /// <summary>A subgraph value.</summary>
    public Graph? Graph { get; init; }

    /// <summary>Float values.</summary>
    public IReadOnlyList<float> Floats { get; init; } = [];

    /// <summary>Int values.</summary>
    public IReadOnlyList<long> Ints { get; init; } = [];

    /// <summary>Byte-string values.</summary>
    public IReadOnlyList<byte[]> ByteStrings { get; init; } = [];

    /// <summary>Tensor values.</summary>
    public IReadOnlyList<TensorData> Tensors { get; init; } = [];

    /// <summary>Subgraph values.</summary>
    public IReadOnlyList<Graph> Graphs { get; init; } = [];

    /// <summary>For attributes of a function body: the name of the caller's attribute this refers to.</summary>
    public string RefAttrName { get; init; } = "";

    /// <summary>Documentation.</summary>
    public string DocString { get; init; } = "";

    /// <summary>The protobuf, for kinds the IR keeps as read (sparse tensors, types).</summary>
    internal AttributeProto? Opaque { get; init; }

    /// <summary>The string value decoded as UTF-8.</summary>
    public string String => System.Text.Encoding.UTF8.GetString(Bytes);

    /// <summary>A float attribute.</summary>
    public static Attribute Of(string name, float value) => new() { Name = name, Kind = AttributeKind.Float, Float = value };

    /// <summary>An int attribute.</summary>
    public static Attribute Of(string name, long value) => new() { Name = name, Kind = AttributeKind.Int, Int = value };

    /// <summary>A string attribute.</summary>
    public static Attribute Of(string name, string value) =>
        new() { Name = name, Kind = AttributeKind.String, Bytes = System.Text.Encoding.UTF8.GetBytes(value) };

    /// <summary>An ints attribute.</summary>
    public static Attribute Of(string name, IReadOnlyList<long> values) => new() { Name = name, Kind = AttributeKind.Ints, Ints = values };

    /// <summary>A floats attribute.</summary>
    public static Attribute Of(string name, IReadOnlyList<float> values) => new() { Name = name, Kind = AttributeKind.Floats, Floats = values };

    /// <summary>A tensor attribute.</summary>
    public static Attribute Of(string name, TensorData value) => new() { Name = name, Kind = AttributeKind.Tensor, Tensor = value };

    /// <summary>A subgraph attribute.</summary>
    public static Attribute Of(string name, Graph value) => new() { Name = name, Kind = AttributeKind.Graph, Graph = value };

    /// <inheritdoc/>
    public override string ToString() => Kind switch
    {
        AttributeKind.Float => $"{Name}={Float}",
        AttributeKind.Int => $"{Name}={Int}",
        AttributeKind.String => $"{Name}=\"{String}\"",
        AttributeKind.Ints => $"{Name}=[{string.Join(",", Ints)}]",
        AttributeKind.Floats => $"{Name}=[{string.Join(",", Floats)}]",
        _ => $"{Name}=<{Kind}>",
    };
}
