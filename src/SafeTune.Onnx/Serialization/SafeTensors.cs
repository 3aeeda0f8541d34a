using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace SafeTune.Onnx;

/// <summary>
/// Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON header mapping names to
/// <c>{"dtype", "shape", "data_offsets"}</c> (plus optional <c>__metadata__</c>), then the raw little-endian data.
/// The reader validates everything it reads and names the tensor at fault.
/// </summary>
public static class SafeTensors
{
    /// <summary>Headers larger than this are refused.</summary>
    public const long MaxHeaderBytes = 100L << 20;

    private static readonly Dictionary<string, ElementType> DTypes = new(StringComparer.Ordinal)
    {
        ["F32"] = ElementType.Float, ["F16"] = ElementType.Float16, ["BF16"] = ElementType.BFloat16, ["F64"] = ElementType.Double,
        ["I64"] = ElementType.Int64, ["I32"] = ElementType.Int32, ["I16"] = ElementType.Int16, ["I8"] = ElementType.Int8,
        ["U8"] = ElementType.UInt8, ["U16"] = ElementType.UInt16, ["U32"] = ElementType.UInt32, ["U64"] = ElementType.UInt64,
        ["BOOL"] = ElementType.Bool, ["F8_E4M3"] = ElementType.Float8E4M3FN, ["F8_E5M2"] = ElementType.Float8E5M2,
    };

    /// <summary>Writes tensors (in the given order, 8-byte aligned header) atomically.</summary>
    public static void Write(string path, IEnumerable<TensorData> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        using var header = new MemoryStream();
        using (var w = new Utf8JsonWriter(header))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in list)
            {
                w.WriteStartObject(t.Name);
                w.WriteString("dtype", DTypes.First(kv => kv.Value == t.ElementType).Key);
                w.WriteStartArray("shape");
                foreach (var d in t.Dims) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset += t.Bytes.Length);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        var json = header.ToArray().ToList();
        while (json.Count % 8 != 0) json.Add((byte)' ');
        AtomicFile.Write(path, s =>
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)json.Count);
            s.Write(len);
            s.Write(json.ToArray());
            foreach (var t in list) s.Write(t.Bytes);
        });
    }

    /// <summary>Reads every tensor of a file, in file order, with the metadata.</summary>
    public static (IReadOnlyList<TensorData> Tensors, IReadOnlyDictionary<string, string> Metadata) Read(string path)
    {
        if (!File.Exists(path)) throw new OnnxFormatException($"{path}: file not found.");
        SafePaths.RequireRegularInput(path);
        using var f = File.OpenRead(path);
        try { return Read(f); }
        catch (OnnxFormatException e) { throw new OnnxFormatException($"{path}: {e.Message}", e); }
    }

    /// <summary>Reads every tensor from a stream positioned at the start of a safetensors file.</summary>
    public static (IReadOnlyList<TensorData> Tensors, IReadOnlyDictionary<string, string> Metadata) Read(Stream s)
    {
        var (entries, metadata, dataStart) = ReadHeader(s);
        var tensors = new List<TensorData>(entries.Count);
        foreach (var e in entries)
        {
            var bytes = new byte[e.End - e.Begin];
            s.Position = dataStart + e.Begin;
            s.ReadExactly(bytes);
            tensors.Add(new TensorData(e.Name, e.Type, e.Shape, bytes));
        }
        return (tensors, metadata);
    }

    /// <summary>
    /// Reads the header of a file and returns its tensors deferred: nothing of the data is read until a tensor's bytes are
    /// needed, and a tensor written to another file streams from this one. With <paramref name="convertToFloat32"/>,
    /// float16, bfloat16 and float64 tensors come back as float32, converted as they are read.
    /// </summary>
    public static (IReadOnlyList<TensorData> Tensors, IReadOnlyDictionary<string, string> Metadata) ReadDeferred(string path, bool convertToFloat32 = false)
    {
        if (!File.Exists(path)) throw new OnnxFormatException($"{path}: file not found.");
        SafePaths.RequireRegularInput(path);
        try
        {
            using var f = File.OpenRead(path);
            var (entries, metadata, dataStart) = ReadHeader(f);
            var tensors = entries.Select(e =>
            {
                var target = convertToFloat32 && e.Type is ElementType.Float16 or ElementType.BFloat16 or ElementType.Double ? ElementType.Float : e.Type;
                return TensorData.FromSource(e.Name, target, e.Shape, new FileTensorSource(path, dataStart + e.Begin, e.Type, target, e.End - e.Begin));
            }).ToList();
            return (tensors, metadata);
        }
        catch (OnnxFormatException e) { throw new OnnxFormatException($"{path}: {e.Message}", e); }
    }

    private static (List<(string Name, ElementType Type, long[] Shape, long Begin, long End)> Entries, Dictionary<string, string> Metadata, long DataStart) ReadHeader(Stream s)
    {
        Span<byte> len = stackalloc byte[8];
        if (s.ReadAtLeast(len, 8, throwOnEndOfStream: false) < 8) throw new OnnxFormatException("not a safetensors file: shorter than its 8-byte header length.");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(len);
        if (headerLength > MaxHeaderBytes) throw new OnnxFormatException($"safetensors header of {headerLength} bytes exceeds the {MaxHeaderBytes >> 20} MB limit.");
        long dataStart = 8 + (long)headerLength;
        if (s.CanSeek && dataStart > s.Length) throw new OnnxFormatException($"safetensors header length {headerLength} runs past the end of the file.");
        var headerBytes = new byte[headerLength];
        s.ReadExactly(headerBytes);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(headerBytes); }
        catch (JsonException e) { throw new OnnxFormatException($"safetensors header is not valid JSON ({e.Message.Split('.')[0]}).", e); }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new OnnxFormatException("safetensors header is not a JSON object.");
        long dataLength = s.CanSeek ? s.Length - dataStart : long.MaxValue;
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var entries = new List<(string Name, ElementType Type, long[] Shape, long Begin, long End)>();
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            if (p.Name == "__metadata__")
            {
                foreach (var m in p.Value.EnumerateObject()) metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                continue;
            }
            entries.Add(ParseEntry(p, dataLength));
        }
        var ordered = entries.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
        RequireTiling(ordered, s.CanSeek ? dataLength : null);
        return (ordered, metadata, dataStart);
    }

    /// <summary>A tensor's bytes in a file, read (and converted to float32 where asked) in chunks as they are written.</summary>
    private sealed class FileTensorSource(string path, long offset, ElementType stored, ElementType target, long storedBytes) : ITensorSource
    {
        private const int ChunkElements = 1 << 18;

        public long ByteCount => stored == target ? storedBytes : storedBytes / stored.ByteSize() * target.ByteSize();

        public void WriteTo(Stream destination)
        {
            using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            f.Position = offset;
            int inSize = stored.ByteSize();
            var input = new byte[stored == target ? ChunkElements * 4 : ChunkElements * inSize];
            var output = stored == target ? input : new byte[ChunkElements * 4];
            long left = storedBytes;
            while (left > 0)
            {
                int n = (int)Math.Min(left, input.Length);
                f.ReadExactly(input.AsSpan(0, n));
                left -= n;
                if (stored == target) { destination.Write(input.AsSpan(0, n)); continue; }
                int count = n / inSize;
                var dst = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(output.AsSpan(0, count * 4));
                var src = input.AsSpan(0, n);
                switch (stored)
                {
                    case ElementType.BFloat16:
                        for (int i = 0; i < count; i++) dst[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(src[(2 * i)..]) << 16);
                        break;
                    case ElementType.Float16:
                        for (int i = 0; i < count; i++) dst[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(src[(2 * i)..]);
                        break;
                    case ElementType.Double:
                        for (int i = 0; i < count; i++) dst[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(src[(8 * i)..]);
                        break;
                    default:
                        throw new InvalidOperationException($"no conversion from {stored.OnnxName()} to {target.OnnxName()}.");
                }
                destination.Write(output.AsSpan(0, count * 4));
            }
        }
    }

    /// <summary>
    /// The tensors' byte ranges must tile the data section exactly, as the format requires: sorted, each starting where
    /// the previous one ends, the last one ending at the end of the file. Overlaps would let one tensor read another's
    /// bytes; gaps hide data no tensor owns.
    /// </summary>
    private static void RequireTiling(List<(string Name, ElementType Type, long[] Shape, long Begin, long End)> ordered, long? dataLength)
    {
        long expected = 0;
        string? previous = null;
        foreach (var e in ordered)
        {
            if (e.Begin < expected)
                throw new OnnxFormatException($"tensor '{e.Name}': data_offsets [{e.Begin}, {e.End}] overlap tensor '{previous}' (which ends at {expected}).");
            if (e.Begin > expected)
                throw new OnnxFormatException($"tensor '{e.Name}': data_offsets [{e.Begin}, {e.End}] leave a gap of {e.Begin - expected} bytes after {(previous is null ? "the header" : $"tensor '{previous}'")}; offsets must be contiguous.");
            expected = e.End;
            previous = e.Name;
        }
        if (dataLength is { } length && expected != length)
            throw new OnnxFormatException($"{length - expected} bytes after the last tensor{(previous is null ? "" : $" ('{previous}')")} belong to no tensor; data_offsets must cover the data section exactly.");
    }

    private static (string, ElementType, long[], long, long) ParseEntry(JsonProperty p, long dataLength)
    {
        string name = p.Name;
        try
        {
            var dtype = p.Value.GetProperty("dtype").GetString() ?? "";
            if (!DTypes.TryGetValue(dtype, out var type)) throw new OnnxFormatException($"tensor '{name}': unsupported dtype '{dtype}'.");
            var shape = p.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            if (shape.Any(d => d < 0)) throw new OnnxFormatException($"tensor '{name}': negative dim in shape [{string.Join(", ", shape)}].");
            var offsets = p.Value.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] > dataLength)
                throw new OnnxFormatException($"tensor '{name}': data_offsets [{string.Join(", ", offsets)}] are outside the data section ({dataLength} bytes).");
            long expected = type.CheckedStorageBytes(shape, name);
            if (offsets[1] - offsets[0] != expected)
                throw new OnnxFormatException($"tensor '{name}': {offsets[1] - offsets[0]} bytes of data for {dtype} [{string.Join(", ", shape)}] (expected {expected}).");
            return (name, type, shape, offsets[0], offsets[1]);
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new OnnxFormatException($"tensor '{name}': malformed header entry ({e.Message}).", e);
        }
    }
}
