using Onnx;

namespace SafeTune.Onnx;

/// <summary>
/// Reads tensor data kept outside the model file. Every location is checked to stay inside the model's folder:
/// absolute paths, <c>..</c> segments and links that lead outside are refused, naming the tensor.
/// </summary>
public sealed class ExternalDataReader : IDisposable
{
    private readonly string _baseDirectory;
    private readonly Dictionary<string, FileStream> _open = new(StringComparer.Ordinal);

    /// <summary>Creates a reader for a model stored in <paramref name="baseDirectory"/>.</summary>
    public ExternalDataReader(string baseDirectory) =>
        _baseDirectory = Path.TrimEndingDirectorySeparator(Path.GetFullPath(baseDirectory));

    /// <summary>Reads the bytes an external tensor points at.</summary>
    public byte[] Read(TensorProto tensor)
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
        if (!_open.TryGetValue(path, out var stream))
        {
            if (!File.Exists(path))
                throw new OnnxFormatException($"tensor '{tensor.Name}': external data file '{location}' does not exist in {_baseDirectory}.");
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.RandomAccess);
            _open[path] = stream;
        }
        var type = (ElementType)tensor.DataType;
        long expected = type.CheckedStorageBytes(tensor.Dims, tensor.Name);
        if (length < 0) length = expected;
        if (offset < 0 || offset > stream.Length || length > stream.Length - offset)
            throw new OnnxFormatException($"tensor '{tensor.Name}': external data at offset {offset}, length {length} lies outside '{location}' ({stream.Length} bytes).");
        if (length != expected)
            throw new OnnxFormatException($"tensor '{tensor.Name}': external data length {length} does not match {type.OnnxName()} [{string.Join(", ", tensor.Dims)}] ({expected} bytes).");
        if (length > Array.MaxLength)
            throw new OnnxFormatException($"tensor '{tensor.Name}': {length} bytes is larger than one array can hold.");
        var bytes = new byte[length];
        stream.Position = offset;
        stream.ReadExactly(bytes);
        return bytes;
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
    public void Dispose()
    {
        foreach (var s in _open.Values) s.Dispose();
        _open.Clear();
    }
}
