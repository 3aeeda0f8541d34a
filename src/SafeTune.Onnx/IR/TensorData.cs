using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace SafeTune.Onnx;

/// <summary>
/// The contents of a constant tensor (an initializer or a Constant's value): element type, dims and little-endian bytes.
/// A tensor loaded from a file keeps its original protobuf until it is changed, so untouched tensors save byte for byte.
/// The bytes may also live outside the managed heap (a memory-mapped external data file) or be produced on demand by a
/// <see cref="ITensorSource"/> (a checkpoint weight converted to float32 as it is written): large models are then never
/// held twice. Copies made by <see cref="Model.Clone"/> or <see cref="WithName"/> share the bytes.
/// </summary>
public sealed class TensorData
{
    private ReadOnlyMemory<byte>? _bytes;
    private TensorProto? _original;
    private readonly ITensorSource? _source;

    /// <summary>The tensor's name (the initializer name).</summary>
    public string Name { get; internal set; }

    /// <summary>The type every element is stored as (float, float16, int64, ...).</summary>
    public ElementType ElementType { get; }

    /// <summary>The dims, outermost first.</summary>
    public long[] Dims { get; }

    /// <summary>String elements, for <see cref="ElementType.String"/> tensors only.</summary>
    public IReadOnlyList<byte[]>? Strings { get; }

    /// <summary>The number of elements.</summary>
    public long ElementCount => Dims.Aggregate(1L, (p, d) => p * d);

    /// <summary>The shape of this tensor.</summary>
    public Shape Shape => Shape.Of(Dims);

    /// <summary>Creates a tensor from raw little-endian bytes.</summary>
    public TensorData(string name, ElementType elementType, long[] dims, byte[] bytes)
    {
        Name = name;
        ElementType = elementType;
        Dims = dims;
        long expected = elementType.StorageBytes(ElementCount);
        if (elementType != ElementType.String && bytes.LongLength != expected)
            throw new OnnxFormatException($"tensor '{name}': {bytes.LongLength} bytes of data for {elementType.OnnxName()} {Shape} (expected {expected}).");
        _bytes = bytes;
    }

    private TensorData(string name, long[] dims, IReadOnlyList<byte[]> strings)
    {
        Name = name;
        ElementType = ElementType.String;
        Dims = dims;
        Strings = strings;
        _bytes = Array.Empty<byte>();
    }

    private TensorData(TensorProto proto, ReadOnlyMemory<byte>? externalBytes)
    {
        Name = proto.Name;
        ElementType = (ElementType)proto.DataType;
        Dims = [.. proto.Dims];
        if (ElementType == ElementType.String)
            Strings = [.. proto.StringData.Select(s => s.ToByteArray())];
        if (externalBytes is { } e)
        {
            _bytes = e;
            ValidateLength(e.Length);
        }
        else _original = proto;
    }

    private TensorData(string name, TensorData shared)
    {
        Name = name;
        ElementType = shared.ElementType;
        Dims = shared.Dims;
        Strings = shared.Strings;
        _bytes = shared._bytes;
        _original = shared._original;
        _source = shared._source;
    }

    private TensorData(string name, ElementType elementType, long[] dims, ITensorSource source)
    {
        Name = name;
        ElementType = elementType;
        Dims = dims;
        _source = source;
        ValidateLength(source.ByteCount);
    }

    /// <summary>
    /// A tensor whose bytes <paramref name="source"/> produces when they are needed. Writing it to a file streams them;
    /// reading <see cref="Bytes"/> materializes them once and keeps them.
    /// </summary>
    public static TensorData FromSource(string name, ElementType elementType, long[] dims, ITensorSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return new TensorData(name, elementType, dims, source);
    }

    /// <summary>A tensor over bytes held elsewhere (for example a memory-mapped file), which are not copied.</summary>
    public static TensorData FromMemory(string name, ElementType elementType, long[] dims, ReadOnlyMemory<byte> bytes) =>
        new(new TensorProto { Name = name, DataType = (int)elementType, Dims = { dims } }, bytes);

    /// <summary>The number of bytes of the data, known without reading them (0 for string tensors).</summary>
    public long ByteCount => ElementType == ElementType.String ? 0 : ElementType.StorageBytes(ElementCount);

    /// <summary>True when the bytes are produced on demand and have not been materialized yet.</summary>
    public bool IsDeferred => _source is not null && _bytes is null;

    /// <summary>The bytes as memory, materialized like <see cref="Bytes"/> (pin it to hand the data to native code without a copy).</summary>
    public ReadOnlyMemory<byte> Memory
    {
        get
        {
            _ = Bytes;
            return _bytes!.Value;
        }
    }

    /// <summary>
    /// Hands the pages holding this tensor's bytes back to the system when they are a memory-mapped external data file
    /// (Linux and macOS): they stop counting as the process's memory and are read from the file again when next touched.
    /// For a tensor whose values have been copied elsewhere (such as weights held in 16 bits). Returns false where the
    /// bytes are not mapped (then nothing changes).
    /// </summary>
    public bool ReleaseMappedPages() => _bytes is { } bytes && MappedFile.Release(bytes);

    /// <summary>
    /// Writes the bytes to <paramref name="stream"/>. A deferred tensor streams them from its source without keeping them,
    /// so writing a model converts one tensor at a time.
    /// </summary>
    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (IsDeferred) _source!.WriteTo(stream);
        else stream.Write(Bytes);
    }

    /// <summary>Creates a tensor holding a copy of typed values.</summary>
    public static TensorData Create<T>(string name, long[] dims, ReadOnlySpan<T> values) where T : unmanaged
    {
        var bytes = MemoryMarshal.AsBytes(values).ToArray();
        return new TensorData(name, ElementTypes.Of<T>(), dims, bytes);
    }

    /// <summary>Creates a scalar (rank 0) tensor.</summary>
    public static TensorData Scalar<T>(string name, T value) where T : unmanaged => Create<T>(name, [], [value]);

    /// <summary>Creates a 1-D tensor.</summary>
    public static TensorData Vector<T>(string name, params T[] values) where T : unmanaged => Create<T>(name, [values.Length], values);

    /// <summary>Creates a string tensor.</summary>
    public static TensorData FromStrings(string name, long[] dims, IEnumerable<string> values) =>
        new(name, dims, [.. values.Select(System.Text.Encoding.UTF8.GetBytes)]);

    /// <summary>The raw little-endian bytes (materialized from typed protobuf fields on first use).</summary>
    public ReadOnlySpan<byte> Bytes => (_bytes ??= _source is not null ? Materialize(_source) : DecodeProto(_original!)).Span;

    private static ReadOnlyMemory<byte> Materialize(ITensorSource source)
    {
        var bytes = new byte[source.ByteCount];
        using var stream = new MemoryStream(bytes, writable: true);
        source.WriteTo(stream);
        if (stream.Position != bytes.Length)
            throw new InvalidDataException($"a tensor source wrote {stream.Position} bytes where {bytes.Length} were expected.");
        return bytes;
    }

    /// <summary>The elements, reinterpreted as <typeparamref name="T"/>.</summary>
    public ReadOnlySpan<T> AsSpan<T>() where T : unmanaged
    {
        if (ElementTypes.Of<T>() != ElementType)
            throw new InvalidOperationException($"tensor '{Name}' holds {ElementType.OnnxName()}, not {typeof(T).Name}.");
        return MemoryMarshal.Cast<byte, T>(Bytes);
    }

    /// <summary>The elements converted to double, for float, double, float16, bfloat16, integer and bool tensors.</summary>
    public double[] ToDoubles()
    {
        var b = Bytes;
        var n = checked((int)ElementCount);
        var r = new double[n];
        for (int i = 0; i < n; i++)
        {
            r[i] = ElementType switch
            {
                ElementType.Float => MemoryMarshal.Cast<byte, float>(b)[i],
                ElementType.Double => MemoryMarshal.Cast<byte, double>(b)[i],
                ElementType.Float16 => (double)MemoryMarshal.Cast<byte, Half>(b)[i],
                ElementType.BFloat16 => BitConverter.Int32BitsToSingle(MemoryMarshal.Cast<byte, ushort>(b)[i] << 16),
                ElementType.Int64 => MemoryMarshal.Cast<byte, long>(b)[i],
                ElementType.Int32 => MemoryMarshal.Cast<byte, int>(b)[i],
                ElementType.Int16 => MemoryMarshal.Cast<byte, short>(b)[i],
                ElementType.Int8 => (sbyte)b[i],
                ElementType.UInt8 or ElementType.Bool => b[i],
                ElementType.UInt16 => MemoryMarshal.Cast<byte, ushort>(b)[i],
                ElementType.UInt32 => MemoryMarshal.Cast<byte, uint>(b)[i],
                ElementType.UInt64 => MemoryMarshal.Cast<byte, ulong>(b)[i],
                _ => throw new InvalidOperationException($"tensor '{Name}': {ElementType.OnnxName()} has no numeric view."),
            };
        }
        return r;
    }

    /// <summary>The elements as int64, for integer tensors (shape and axis constants).</summary>
    public long[] ToInt64s() => ElementType.IsInteger() || ElementType == ElementType.Bool
        ? [.. ToDoubles().Select(d => (long)d)]
        : throw new InvalidOperationException($"tensor '{Name}' is {ElementType.OnnxName()}, not an integer tensor.");

    /// <summary>Returns a tensor under another name; the bytes are shared, not copied (a tensor's bytes never change).</summary>
    public TensorData WithName(string name) => new(name, this);

    /// <summary>Reads a tensor from its protobuf; external data is read through <paramref name="external"/>.</summary>
    public static TensorData FromProto(TensorProto proto, ExternalDataReader? external) => FromProto(proto, (IExternalTensors?)external);

    internal static TensorData FromProto(TensorProto proto, IExternalTensors? external)
    {
        if (proto.DataLocation == TensorProto.Types.DataLocation.External)
        {
            if (external is null)
                throw new OnnxFormatException($"tensor '{proto.Name}' keeps its data in an external file, but the model was not loaded from a file.");
            return external.Read(proto);
        }
        var t = new TensorData(proto, null);
        if (t.ElementType != ElementType.String) t.ValidateLength(t.Bytes.Length);
        return t;
    }

    /// <summary>Writes this tensor as protobuf with its data inline.</summary>
    public TensorProto ToProto()
    {
        if (_original is not null && _original.Name == Name) return _original;
        var p = new TensorProto { Name = Name, DataType = (int)ElementType };
        p.Dims.AddRange(Dims);
        if (Strings is not null) p.StringData.AddRange(Strings.Select(ByteString.CopyFrom));
        else p.RawData = ByteString.CopyFrom(Bytes);
        return p;
    }

    private void ValidateLength(long length)
    {
        if (ElementType == ElementType.String) return;
        if (ElementType.ByteSize() == 0 && ElementType is not (ElementType.Int4 or ElementType.UInt4))
            throw new OnnxFormatException($"tensor '{Name}' has unsupported element type {(int)ElementType}.");
        if (Dims.Any(d => d < 0))
            throw new OnnxFormatException($"tensor '{Name}' has a negative dim: [{string.Join(", ", Dims)}].");
        long expected = ElementType.StorageBytes(ElementCount);
        if (length != expected)
            throw new OnnxFormatException($"tensor '{Name}': {length} bytes of data for {ElementType.OnnxName()} [{string.Join(", ", Dims)}] (expected {expected}).");
    }

    private static ReadOnlyMemory<byte> DecodeProto(TensorProto p)
    {
        var type = (ElementType)p.DataType;
        if (!p.RawData.IsEmpty) return p.RawData.Memory; // shares the parsed buffer, no copy
        switch (type)
        {
            case ElementType.Float:
            case ElementType.Complex64:
                return MemoryMarshal.AsBytes<float>([.. p.FloatData]).ToArray();
            case ElementType.Double:
            case ElementType.Complex128:
                return MemoryMarshal.AsBytes<double>([.. p.DoubleData]).ToArray();
            case ElementType.Int64:
                return MemoryMarshal.AsBytes<long>([.. p.Int64Data]).ToArray();
            case ElementType.UInt32:
                return MemoryMarshal.AsBytes<uint>([.. p.Uint64Data.Select(v => (uint)v)]).ToArray();
            case ElementType.UInt64:
                return MemoryMarshal.AsBytes<ulong>([.. p.Uint64Data]).ToArray();
            case ElementType.Int32:
                return MemoryMarshal.AsBytes<int>([.. p.Int32Data]).ToArray();
            case ElementType.Int16:
            case ElementType.UInt16:
            case ElementType.Float16:
            case ElementType.BFloat16:
                return MemoryMarshal.AsBytes<ushort>([.. p.Int32Data.Select(v => (ushort)v)]).ToArray();
            case ElementType.Int8:
            case ElementType.UInt8:
            case ElementType.Bool:
            case ElementType.Float8E4M3FN:
            case ElementType.Float8E4M3FNUZ:
            case ElementType.Float8E5M2:
            case ElementType.Float8E5M2FNUZ:
            case ElementType.Int4:
            case ElementType.UInt4:
                return p.Int32Data.Select(v => (byte)v).ToArray();
            case ElementType.String:
                return Array.Empty<byte>();
            default:
                throw new OnnxFormatException($"tensor '{p.Name}' has unsupported element type {p.DataType}.");
        }
    }
}
