using Onnx;

namespace SafeTune.Onnx;

/// <summary>
/// Reads tensor data kept outside the model file. Every location is checked to stay inside the model's folder:
/// absolute paths, <c>..</c> segments and links that lead outside are refused, naming the tensor.
/// </summary>
public sealed class ExternalDataReader : IDisposable, IExternalTensors
{
    private readonly string _baseDirectory;
    private readonly Dictionary<string, MappedFile> _open = new(StringComparer.Ordinal);

    /// <summary>Creates a reader for a model stored in <paramref name="baseDirectory"/>.</summary>
    public ExternalDataReader(string baseDirectory) =>
        _baseDirectory = Path.TrimEndingDirectorySeparator(Path.GetFullPath(baseDirectory));

    TensorData IExternalTensors.Read(TensorProto proto) => TensorData.FromMemory(proto.Name, (ElementType)proto.DataType, [.. proto.Dims], Read(proto));

    /// <summary>
    /// The bytes an external tensor points at, memory-mapped rather than copied: the mapping stays valid for as long as the
    /// returned memory is referenced, after this reader is disposed too.
    /// </summary>
    public ReadOnlyMemory<byte> Read(TensorProto tensor)
    {
        string? location = null;
        long offset = 0, length = -1;
        foreach (var e in tensor.ExternalData)
        {
            switch (e.Key)
            {
                case "location": location = e.Value; break;
                case "offset": offset = ParseNumber(tensor.Name, e.Key, e.Value); break;
                case "length": length = ParseNumber(tensor.Name, e.Key, e.Value); break;
            }
        }
        if (string.IsNullOrEmpty(location))
            throw new OnnxFormatException($"tensor '{tensor.Name}': external data has no location.");
        var path = ResolveInside(tensor.Name, location);
        if (!_open.TryGetValue(path, out var mapped))
        {
            if (!File.Exists(path))
                throw new OnnxFormatException($"tensor '{tensor.Name}': external data file '{location}' does not exist in {_baseDirectory}.");
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess);
            mapped = MappedFile.Open(stream);
            _open[path] = mapped;
        }
        var type = (ElementType)tensor.DataType;
        long expected = type.CheckedStorageBytes(tensor.Dims, tensor.Name);
        if (length < 0) length = expected;
        if (offset < 0 || offset > mapped.Length || length > mapped.Length - offset)
            throw new OnnxFormatException($"tensor '{tensor.Name}': external data at offset {offset}, length {length} lies outside '{location}' ({mapped.Length} bytes).");
        if (length != expected)
            throw new OnnxFormatException($"tensor '{tensor.Name}': external data length {length} does not match {type.OnnxName()} [{string.Join(", ", tensor.Dims)}] ({expected} bytes).");
        if (length > int.MaxValue)
            throw new OnnxFormatException($"tensor '{tensor.Name}': {length} bytes is larger than one tensor can hold here (2 GiB).");
        return mapped.Slice(offset, length);
    }

    /// <summary>
    /// Resolves an external-data location against the model folder, refusing anything that escapes it (absolute paths,
    /// drive letters, <c>..</c>, or a link anywhere along the path whose target lies outside), and anything there that is
    /// not a regular file (a pipe or a device).
    /// </summary>
    public string ResolveInside(string tensorName, string location)
    {
        string full;
        try { full = SafePaths.ResolveInside(_baseDirectory, location, $"tensor '{tensorName}': external data location", "the model's folder"); }
        catch (InvalidDataException e) { throw new OnnxFormatException(e.Message); }
        var kind = SafePaths.KindOf(full);
        if (kind is not (FileKind.Missing or FileKind.Regular))
            throw new OnnxFormatException($"tensor '{tensorName}': external data location '{location}' is {SafePaths.Describe(kind)}, not a regular file.");
        return full;
    }

    private static long ParseNumber(string tensor, string key, string value) =>
        long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var v)
            ? v
            : throw new OnnxFormatException($"tensor '{tensor}': external data {key} '{value}' is not a non-negative integer.");

    /// <inheritdoc/>
    public void Dispose() => _open.Clear();
}
