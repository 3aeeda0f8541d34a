using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using SafeTune.Models.Decoders;

namespace SafeTune.Models.Demo;

/// <summary>
/// How the demo model is made: its shape, its tokenizer, the data seed and the training hyper-parameters
/// (<c>models/demo/recipe.json</c>, embedded in this assembly as <see cref="Default"/>).
/// </summary>
public sealed record DemoRecipe
{
    /// <summary>Bumped whenever the demo data, the tokenizer trainer or the training loop change what a recipe produces.</summary>
    public const string CodeVersion = "demo-v3";

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
    };

    /// <summary>A name for the model.</summary>
    public string Name { get; init; } = "safetune-demo";
    /// <summary>The decoder's shape.</summary>
    public DemoModelShape Model { get; init; } = new();
    /// <summary>How the byte-level BPE tokenizer is learned and which chat template wraps the turns.</summary>
    public DemoTokenizerSettings Tokenizer { get; init; } = new();
    /// <summary>How the synthetic training and test conversations are drawn.</summary>
    public DemoDataSettings Data { get; init; } = new();
    /// <summary>The training run.</summary>
    public DemoTrainingSettings Training { get; init; } = new();

    /// <summary>The recipe shipped with SafeTune (<c>models/demo/recipe.json</c>).</summary>
    public static DemoRecipe Default
    {
        get
        {
            using var stream = typeof(DemoRecipe).Assembly.GetManifestResourceStream("SafeTune.Models.Demo.recipe.json")
                ?? throw new InvalidOperationException("the embedded demo recipe is missing.");
            using var reader = new StreamReader(stream, Encoding.UTF8);
            return Parse(reader.ReadToEnd());
        }
    }

    /// <summary>Parses a recipe from JSON (snake_case names, as in <c>recipe.json</c>).</summary>
    /// <exception cref="InvalidDataException">The text is not a valid recipe.</exception>
    public static DemoRecipe Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            return JsonSerializer.Deserialize<DemoRecipe>(json, Json) ?? throw new InvalidDataException("the demo recipe is empty.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"the demo recipe is not valid: {e.Message}", e);
        }
    }

    /// <summary>The recipe as JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>SHA-256 (hex) of the recipe and <see cref="CodeVersion"/>: the cache key of a trained model.</summary>
    public string Hash() => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(CodeVersion + "\n" + ToJson())));

    /// <summary>The Llama configuration for a vocabulary of <paramref name="vocabSize"/> ids.</summary>
    public LlamaConfig LlamaConfig(int vocabSize) => new()
    {
        VocabSize = vocabSize, HiddenSize = Model.HiddenSize, Layers = Model.Layers, Heads = Model.Heads, KeyValueHeads = Model.KeyValueHeads,
        IntermediateSize = Model.IntermediateSize, RopeTheta = Model.RopeTheta, RmsNormEpsilon = Model.RmsNormEpsilon,
        TieWordEmbeddings = Model.TieWordEmbeddings,
    };
}

/// <summary>The demo decoder's shape (Llama-like).</summary>
public sealed record DemoModelShape
{
    /// <summary>Transformer blocks.</summary>
    public int Layers { get; init; } = 4;
    /// <summary>Residual width.</summary>
    public int HiddenSize { get; init; } = 128;
    /// <summary>Query heads.</summary>
    public int Heads { get; init; } = 4;
    /// <summary>Heads of the keys and values, shared by groups of query heads (grouped-query attention).</summary>
    public int KeyValueHeads { get; init; } = 2;
    /// <summary>SwiGLU width.</summary>
    public int IntermediateSize { get; init; } = 352;
    /// <summary>RoPE base.</summary>
    public double RopeTheta { get; init; } = 10000.0;
    /// <summary>Added to the mean square in every RMSNorm.</summary>
    public float RmsNormEpsilon { get; init; } = 1e-6f;
    /// <summary>Whether the LM head shares the embedding.</summary>
    public bool TieWordEmbeddings { get; init; } = true;
    /// <summary>Seed of the random initialization.</summary>
    public int InitSeed { get; init; } = 1234;
}

/// <summary>The demo tokenizer's settings.</summary>
public sealed record DemoTokenizerSettings
{
    /// <summary>The most BPE merges learned on top of the 256 byte symbols.</summary>
    public int Merges { get; init; } = 509;
    /// <summary>The chat template (see <see cref="Chat.ChatTemplates.ByName"/>).</summary>
    public string ChatTemplate { get; init; } = "chatml";
}

/// <summary>How the demo's synthetic conversations are drawn.</summary>
public sealed record DemoDataSettings
{
    /// <summary>Seed of <see cref="DemoData.Train"/> and <see cref="DemoData.Test"/>.</summary>
    public int Seed { get; init; } = 7;
}

/// <summary>The demo training run (AdamW, linear warm-up then cosine decay, gradient clipping).</summary>
public sealed record DemoTrainingSettings
{
    /// <summary>Seed of the batch order.</summary>
    public int Seed { get; init; } = 11;
    /// <summary>Optimizer steps.</summary>
    public int Steps { get; init; } = 700;
    /// <summary>Conversations per batch (padded on the right to the longest).</summary>
    public int BatchSize { get; init; } = 32;
    /// <summary>Peak learning rate.</summary>
    public double LearningRate { get; init; } = 3e-3;
    /// <summary>Learning rate at the end of the cosine decay.</summary>
    public double MinLearningRate { get; init; } = 1e-4;
    /// <summary>Warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 40;
    /// <summary>AdamW weight decay.</summary>
    public double WeightDecay { get; init; } = 0.1;
    /// <summary>AdamW beta1.</summary>
    public double Beta1 { get; init; } = 0.9;
    /// <summary>AdamW beta2.</summary>
    public double Beta2 { get; init; } = 0.98;
    /// <summary>Global gradient-norm clip (0 = none).</summary>
    public double ClipNorm { get; init; } = 1.0;
    /// <summary>ONNX Runtime intra-op threads (fixed, so that results repeat bit for bit on one machine).</summary>
    public int Threads { get; init; } = 2;
}
