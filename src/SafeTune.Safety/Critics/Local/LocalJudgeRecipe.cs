using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using SafeTune.Onnx;

namespace SafeTune.Safety.Critics.Local;

/// <summary>
/// How the local classifier judge is made: the input length, the LoRA adapters, the training run and the data mix. The
/// defaults are the shipped recipe; <see cref="Hash"/> keys the cache.
/// </summary>
public sealed record LocalJudgeRecipe
{
    /// <summary>Bumped whenever the data builder, the templates, the graph or the training loop change what a recipe produces.</summary>
    public const string CodeVersion = "local-judge-v2";

    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>The recipe shipped with SafeTune.</summary>
    public static LocalJudgeRecipe Default { get; } = new();

    /// <summary>A name for the judge.</summary>
    public string Name { get; init; } = "safetune-minilm-judge";
    /// <summary>The longest encoded pair, special tokens included (see <see cref="JudgePairEncoder"/>).</summary>
    public int MaxLength { get; init; } = 64;
    /// <summary>p(harmful) at or above which an item counts as harmful (score 3 and up).</summary>
    public double Threshold { get; init; } = 0.5;
    /// <summary>Seed of the head's initialization.</summary>
    public int HeadSeed { get; init; } = 5;
    /// <summary>The LoRA adapters.</summary>
    public LocalJudgeLora Lora { get; init; } = new();
    /// <summary>The training run.</summary>
    public LocalJudgeTraining Training { get; init; } = new();
    /// <summary>The data mix.</summary>
    public LocalJudgeDataMix Data { get; init; } = new();

    /// <summary>The recipe as JSON (snake_case).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Parses a recipe from JSON (snake_case names).</summary>
    /// <exception cref="InvalidDataException">The text is not a valid recipe.</exception>
    public static LocalJudgeRecipe Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        try { return JsonSerializer.Deserialize<LocalJudgeRecipe>(json, Json) ?? throw new InvalidDataException("the judge recipe is empty."); }
        catch (JsonException e) { throw new InvalidDataException($"the judge recipe is not valid: {e.Message}", e); }
    }

    /// <summary>
    /// SHA-256 (hex) of <see cref="CodeVersion"/>, the recipe and <paramref name="dataFingerprint"/> (the hashes of the
    /// data files it reads): the cache key of a built judge.
    /// </summary>
    public string Hash(string dataFingerprint) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(CodeVersion + "\n" + ToJson() + "\n" + dataFingerprint)));

    /// <summary>Throws <see cref="UserInputException"/> naming the setting when a value is out of range.</summary>
    public void Validate()
    {
        if (MaxLength is < 8 or > Pretrained.MiniLmPackage.MaxPositions)
            throw new UserInputException($"the judge recipe's max_length must lie in [8, {Pretrained.MiniLmPackage.MaxPositions}], not {MaxLength}.");
        if (!(Threshold is > 0 and < 1)) throw new UserInputException($"the judge recipe's threshold must lie in (0, 1), not {Threshold}.");
        if (Lora.Rank < 1) throw new UserInputException($"the judge recipe's lora.rank must be at least 1, not {Lora.Rank}.");
        if (Lora.Layers.Count == 0 || Lora.Layers.Any(l => l is < 0 or >= Pretrained.MiniLmPackage.Layers))
            throw new UserInputException($"the judge recipe's lora.layers must name layers in [0, {Pretrained.MiniLmPackage.Layers - 1}].");
        if (Training.Steps < 1 || Training.BatchSize < 1) throw new UserInputException("the judge recipe needs at least one step and one pair per batch.");
        if (!(Training.LearningRate > 0)) throw new UserInputException($"the judge recipe's learning_rate must be positive, not {Training.LearningRate}.");
        if (!(Data.HeldOutGroups is >= 0 and < 1)) throw new UserInputException($"the judge recipe's held_out_groups must lie in [0, 1), not {Data.HeldOutGroups}.");
    }
}

/// <summary>LoRA settings of the judge: which encoder layers get adapters on all their projections.</summary>
public sealed record LocalJudgeLora
{
    /// <summary>The adapter rank.</summary>
    public int Rank { get; init; } = 8;
    /// <summary>The scaling numerator (the update is scaled by alpha / rank).</summary>
    public double Alpha { get; init; } = 16;
    /// <summary>The encoder layers (0-based) whose query, key, value, attention-output, intermediate and output projections are adapted.</summary>
    public IReadOnlyList<int> Layers { get; init; } = [3, 4, 5];
    /// <summary>Seed of the A matrices.</summary>
    public int Seed { get; init; } = 3;

    /// <summary>The LoRA name pattern for <see cref="Layers"/> (weights named by <see cref="HarmClassifierGraph.NameProjections"/>).</summary>
    public string Pattern => $@"^encoder\.layer\.({string.Join('|', Layers)})\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)\.weight$";
}

/// <summary>The judge's training run: AdamW, linear warm-up then cosine decay, gradient clipping, fixed threads.</summary>
public sealed record LocalJudgeTraining
{
    /// <summary>Seed of the batch order.</summary>
    public int Seed { get; init; } = 17;
    /// <summary>Optimizer steps.</summary>
    public int Steps { get; init; } = 150;
    /// <summary>Pairs per batch (padded on the right to the longest).</summary>
    public int BatchSize { get; init; } = 32;
    /// <summary>Peak learning rate (adapters and head alike).</summary>
    public double LearningRate { get; init; } = 3e-3;
    /// <summary>Learning rate at the end of the cosine decay.</summary>
    public double MinLearningRate { get; init; } = 5e-5;
    /// <summary>Warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 10;
    /// <summary>AdamW weight decay.</summary>
    public double WeightDecay { get; init; } = 0.01;
    /// <summary>Global gradient-norm clip (0 = none).</summary>
    public double ClipNorm { get; init; } = 1.0;
    /// <summary>ONNX Runtime intra-op threads (fixed, so that results repeat bit for bit on one machine).</summary>
    public int Threads { get; init; } = 2;
}

/// <summary>How many pairs of each kind the judge trains and is tested on (see <see cref="JudgeData"/>).</summary>
public sealed record LocalJudgeDataMix
{
    /// <summary>Seed of the sampling and of the template choices.</summary>
    public int Seed { get; init; } = 23;
    /// <summary>The seed of <see cref="Models.Demo.DemoData"/> whose training pairs join the judge's training data and whose test pairs are scored.</summary>
    public int DemoSeed { get; init; } = 7;
    /// <summary>Alpaca-Libre instructions with their answers used for training (the rest is held out).</summary>
    public int AlpacaTrain { get; init; } = 900;
    /// <summary>
    /// The share of the template groups of the project's hard negatives and direct harmful requests held out for testing
    /// (whole groups, so no template family is on both sides); the rest is trained on.
    /// </summary>
    public double HeldOutGroups { get; init; } = 0.2;
    /// <summary>The most held-out pairs per test group (<c>harmfulqa/compliant</c>, <c>alpaca/answer</c>, ...); 0 skips testing.</summary>
    public int TestPerGroup { get; init; } = 250;
}
