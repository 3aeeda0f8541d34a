using Google.Protobuf;
using Onnx;

namespace SafeTune.Onnx;

/// <summary>The files an ONNX model is read from: the model file and the external-data files its tensors name.</summary>
public static class ModelFiles
{
    /// <summary>
    /// The model file (full path) followed by each external-data file its tensors point at (initializers, sparse
    /// initializers and tensor attributes, in subgraphs too), each once, in the order first named. Locations are resolved
    /// inside the model's folder as <see cref="Model.Load"/> resolves them, so a location that escapes is refused here too.
    /// </summary>
    /// <exception cref="OnnxFormatException">The file is not an ONNX model, or a location leaves the model's folder.</exception>
    public static IReadOnlyList<string> Of(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var full = Path.GetFullPath(path);
        var kind = SafePaths.KindOf(full);
        if (kind != FileKind.Regular) throw new OnnxFormatException($"{path}: is {SafePaths.Describe(kind)}, not a regular file; only regular files are read.");
        ModelProto proto;
        try
        {
            using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            proto = ModelProto.Parser.ParseFrom(stream);
        }
        catch (InvalidProtocolBufferException e) { throw new OnnxFormatException($"{path}: not a valid ONNX model ({e.Message.Split('.', 2)[0].Trim()}).", e); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new OnnxFormatException($"{path}: cannot read the file ({e.Message}).", e); }
        var files = new List<string> { full };
        using var external = new ExternalDataReader(Path.GetDirectoryName(full)!);
        try
        {
            if (proto.Graph is { } graph) Walk(graph, external, files);
        }
        catch (OnnxFormatException e) { throw new OnnxFormatException($"{path}: {e.Message}", e); }
        return files;
    }

    private static void Walk(GraphProto graph, ExternalDataReader external, List<string> files)
    {
        foreach (var t in graph.Initializer) Add(t, external, files);
        foreach (var s in graph.SparseInitializer)
        {
            if (s.Values is { } v) Add(v, external, files);
            if (s.Indices is { } i) Add(i, external, files);
        }
        foreach (var node in graph.Node)
        {
            foreach (var a in node.Attribute)
            {
                if (a.T is { } t) Add(t, external, files);
                foreach (var x in a.Tensors) Add(x, external, files);
                if (a.G is { } g) Walk(g, external, files);
                foreach (var x in a.Graphs) Walk(x, external, files);
            }
        }
    }

    private static void Add(TensorProto tensor, ExternalDataReader external, List<string> files)
    {
        if (tensor.DataLocation != TensorProto.Types.DataLocation.External) return;
        var location = tensor.ExternalData.FirstOrDefault(e => e.Key == "location")?.Value;
        if (string.IsNullOrEmpty(location)) throw new OnnxFormatException($"tensor '{tensor.Name}': external data has no location.");
        var file = external.ResolveInside(tensor.Name, location);
        if (!files.Contains(file, StringComparer.Ordinal)) files.Add(file);
    }
}
