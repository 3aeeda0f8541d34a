using System.Text.Json;
using SafeTune.TestSupport;

namespace SafeTune.Tests.Common;

/// <summary>The values PyTorch produced for one fixture model (<c>tests/fixtures/models/NAME.expected.json</c>).</summary>
public sealed class FixtureExpectation
{
    private static readonly Dictionary<string, FixtureExpectation> Cache = new(StringComparer.Ordinal);
    private static readonly Lock CacheLock = new();

    private FixtureExpectation(string name, JsonElement root)
    {
        Name = name;
        var ids = root.GetProperty("inputIds");
        InputShape = [ids.GetArrayLength(), ids[0].GetArrayLength()];
        InputIds = [.. ids.EnumerateArray().SelectMany(row => row.EnumerateArray().Select(e => e.GetInt64()))];
        Logits = Floats(root.GetProperty("logits"));
        LogitsShape = Longs(root.GetProperty("logitsShape"));
        HiddenStates = [.. root.GetProperty("hiddenStates").EnumerateArray().Select(Floats)];
        HiddenStatesShape = Longs(root.GetProperty("hiddenStatesShape"));
        HiddenStateNames = [.. root.GetProperty("hiddenStateNames").EnumerateArray().Select(e => e.GetString()!)];
        Layers = root.GetProperty("layers").GetInt32();
        Parameters = root.GetProperty("parameters").GetInt64();
        Initializers = root.GetProperty("initializers").GetInt32();
        Config = root.GetProperty("config").Clone();
    }

    /// <summary>The fixture names of the four torch.onnx exports.</summary>
    public static readonly string[] AllNames = ["gpt2_tiny_folded", "gpt2_tiny_unfolded", "llama_tiny_folded", "llama_tiny_unfolded"];

    /// <summary>The fixture name, e.g. <c>llama_tiny_unfolded</c>.</summary>
    public string Name { get; }

    /// <summary>The ONNX file of the fixture.</summary>
    public string ModelPath => Repo.Fixture("models", Name + ".onnx");

    /// <summary>The input ids, flattened row-major.</summary>
    public long[] InputIds { get; }

    /// <summary>[batch, sequence] of <see cref="InputIds"/>.</summary>
    public long[] InputShape { get; }

    /// <summary>PyTorch's logits, flattened.</summary>
    public float[] Logits { get; }

    /// <summary>[batch, sequence, vocab].</summary>
    public long[] LogitsShape { get; }

    /// <summary>PyTorch's residual stream after each block, flattened, one array per layer.</summary>
    public float[][] HiddenStates { get; }

    /// <summary>[batch, sequence, width].</summary>
    public long[] HiddenStatesShape { get; }

    /// <summary>The ONNX tensors the exporter gave the block outputs.</summary>
    public string[] HiddenStateNames { get; }

    /// <summary>Number of transformer blocks.</summary>
    public int Layers { get; }

    /// <summary>Float parameter count summed over the initializers.</summary>
    public long Parameters { get; }

    /// <summary>Number of initializers.</summary>
    public int Initializers { get; }

    /// <summary>The model's configuration as written by the generator.</summary>
    public JsonElement Config { get; }

    /// <summary>Loads (once) the expectation of a fixture.</summary>
    public static FixtureExpectation Load(string name)
    {
        lock (CacheLock)
        {
            if (Cache.TryGetValue(name, out var e)) return e;
            using var doc = JsonDocument.Parse(File.ReadAllBytes(Repo.Fixture("models", name + ".expected.json")));
            e = new FixtureExpectation(name, doc.RootElement);
            Cache[name] = e;
            return e;
        }
    }

    private static float[] Floats(JsonElement a) => [.. a.EnumerateArray().Select(e => e.GetSingle())];

    private static long[] Longs(JsonElement a) => [.. a.EnumerateArray().Select(e => e.GetInt64())];
}
