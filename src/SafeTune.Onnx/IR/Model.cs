using Google.Protobuf;
using Onnx;

namespace SafeTune.Onnx;

/// <summary>An ONNX model: metadata, operator-set imports and the main graph.</summary>
public sealed class Model
{
    /// <summary>Creates a model around a graph.</summary>
    public Model(Graph graph) => Graph = graph;

    /// <summary>The main graph.</summary>
    public Graph Graph { get; }

    /// <summary>The ONNX IR version.</summary>
    public long IrVersion { get; set; } = 8;

    /// <summary>Operator-set imports: domain ("" for ai.onnx) to version.</summary>
    public OrderedDictionary<string, long> Opsets { get; } = new(StringComparer.Ordinal);

    /// <summary>The producing tool's name.</summary>
    public string ProducerName { get; set; } = "SafeTune";

    /// <summary>The producing tool's version.</summary>
    public string ProducerVersion { get; set; } = "";

    /// <summary>The model's domain.</summary>
    public string Domain { get; set; } = "";

    /// <summary>The model's version.</summary>
    public long ModelVersion { get; set; }

    /// <summary>Documentation.</summary>
    public string DocString { get; set; } = "";

    /// <summary>Metadata properties.</summary>
    public List<KeyValuePair<string, string>> MetadataProps { get; } = [];

    /// <summary>Model-local functions, kept as read.</summary>
    public List<FunctionProto> Functions { get; } = [];

    /// <summary>Training information, kept as read.</summary>
    public List<TrainingInfoProto> TrainingInfo { get; } = [];

    /// <summary>The imported version of the default (ai.onnx) domain, or 0 when not imported.</summary>
    public long DefaultOpset => OpsetOf("");

    /// <summary>The imported version of a domain ("" or "ai.onnx" for the default), or 0.</summary>
    public long OpsetOf(string domain) =>
        Opsets.TryGetValue(domain == "ai.onnx" ? "" : domain, out var v) ? v
        : domain.Length == 0 && Opsets.TryGetValue("ai.onnx", out var w) ? w : 0;

    /// <summary>Loads a model file; external data is read from the model's folder.</summary>
    public static Model Load(string path) => ModelReader.Load(path);

    /// <summary>Parses a model from bytes. External data is refused unless <paramref name="baseDirectory"/> is given.</summary>
    public static Model FromBytes(ReadOnlySpan<byte> bytes, string? baseDirectory = null, string displayName = "<memory>") =>
        ModelReader.Parse(bytes, baseDirectory, displayName);

    /// <summary>Saves the model atomically (temp file and rename).</summary>
    public void Save(string path, SaveOptions? options = null) => ModelWriter.Save(this, path, options ?? new SaveOptions());

    /// <summary>
    /// A copy of the model (graph, nodes, attributes, metadata) that can be changed independently of this one; its
    /// initializers share this model's tensor bytes, so copying a multi-gigabyte model costs only its graph.
    /// </summary>
    public Model Clone(string displayName = "<copy>")
    {
        var sink = new SharingSink();
        var proto = ModelWriter.ToProto(this, sink);
        try { return ModelReader.FromProto(proto, sink); }
        catch (OnnxFormatException e) { throw new OnnxFormatException($"{displayName}: {e.Message}", e); }
    }

    /// <summary>Serializes the model with every tensor inline.</summary>
    public byte[] ToBytes() => ModelWriter.ToProto(this, null).ToByteArray();

    /// <summary>Builds the protobuf form with every tensor inline.</summary>
    public ModelProto ToProto() => ModelWriter.ToProto(this, null);
}

/// <summary>Options for <see cref="Model.Save"/>.</summary>
public sealed record SaveOptions
{
    /// <summary>
    /// When set, tensors of at least <see cref="ExternalDataThreshold"/> bytes go to this file, next to the model
    /// (a file name, not a path). Models whose tensors exceed the 2 GB protobuf limit must use it.
    /// </summary>
    public string? ExternalDataFile { get; init; }

    /// <summary>The smallest tensor, in bytes, that goes to external data.</summary>
    public long ExternalDataThreshold { get; init; } = 1024;

    /// <summary>Offsets of external tensors are aligned to this many bytes.</summary>
    public int ExternalDataAlignment { get; init; } = 64;

    /// <summary>
    /// True to save external data automatically (to <c>MODEL.onnx.data</c>) when the initializers exceed
    /// <see cref="ExternalDataAbove"/> bytes or the 2 GB protobuf limit.
    /// </summary>
    public bool ExternalDataWhenLarge { get; init; } = true;

    /// <summary>
    /// With <see cref="ExternalDataWhenLarge"/>, models whose initializers hold more than this many bytes are saved with
    /// external data (default 256 MiB). Such a model is written tensor by tensor and loaded memory-mapped: it is never
    /// held twice, neither while it is saved nor after it is loaded.
    /// </summary>
    public long ExternalDataAbove { get; init; } = 256L << 20;
}
