using System.Text.Json;
using System.Text.Json.Serialization;
using SafeTune.Onnx;
using SafeTune.Safety.Critics;
using SafeTune.Training.FineTuning;

namespace SafeTune.Training.Experiments;

/// <summary>
/// An experiment: methods x attack scenarios x seeds, all fine-tuning the same model and evaluated on the same sets.
/// Read from JSON (snake_case names); relative paths are resolved against the config file's folder.
/// <code>
/// {
///   "name": "advbench-attack",
///   "model": "model.onnx", "generation_model": "model-kv.onnx", "tokenizer": "tokenizer.json", "template": "chatml",
///   "training": {"epochs": 5, "batch_size": 16, "lr": 1e-3, "max_length": 128, "lora_rank": 64, "lora_alpha": 16},
///   "scenarios": [
///     {"name": "harmful", "kind": "harmful", "harmful": ["advbench.csv*300"]},
///     {"name": "mixed", "kind": "mixed", "benign": ["alpaca.jsonl:900"], "harmful": ["advbench.csv"], "harmful_fraction": 0.1},
///     {"name": "benign", "kind": "benign", "benign": ["alpaca.jsonl:300"]}],
///   "methods": [
///     {"name": "standard"}, {"name": "fixed-kl"},
///     {"name": "adaptive-probe", "method": "adaptive", "risk": "probe:probe.json"},
///     {"name": "adaptive-critic", "method": "adaptive", "risk": "critic:onnx:judge"}],
///   "seeds": [0, 1, 2],
///   "evaluation": {"harmful": ["catqa.csv"], "benign": ["gsm8k.jsonl:100"], "overrefusal": ["xstest.csv@label=safe"],
///                  "task": ["task_test.jsonl"], "limit": 200, "max_new_tokens": 48, "every": 0},
///   "parallel": 1,
///   "out": "results/advbench-attack"
/// }
/// </code>
/// </summary>
internal sealed partial record ExperimentConfig
{
    /// <summary>A name for the report.</summary>
    public string Name { get; init; } = "experiment";
    /// <summary>The starting (aligned) model.</summary>
    public string Model { get; init; } = "";
    /// <summary>The same model with a key/value cache, for fast generation during evaluation (optional).</summary>
    public string? GenerationModel { get; init; }
    /// <summary>The tokenizer spec.</summary>
    public string Tokenizer { get; init; } = "";
    /// <summary>The chat template (null: from tokenizer_config.json).</summary>
    public string? Template { get; init; }
    /// <summary>Training settings shared by every run.</summary>
    public ExperimentTraining Training { get; init; } = new();
    /// <summary>The attack scenarios.</summary>
    public IReadOnlyList<ExperimentScenario> Scenarios { get; init; } = [];
    public IReadOnlyList<ExperimentMethod> Methods { get; init; } = [];
    /// <summary>The seeds (each run once per seed).</summary>
    public IReadOnlyList<int> Seeds { get; init; } = [0];
    /// <summary>What every model is evaluated on.</summary>
    public ExperimentEvaluation Evaluation { get; init; } = new();
    /// <summary>The output folder (default: next to the config, named after it).</summary>
    public string? Out { get; init; }
    /// <summary>
    /// Runs trained at once (default 1). Each run is independent and its result does not depend on the order, so this
    /// changes only the wall-clock time; give each run fewer ONNX Runtime threads (<c>training.threads</c>) to match.
    /// </summary>
    public int Parallel { get; init; } = 1;

    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Reads a config file and resolves its relative paths.</summary>
    /// <exception cref="InvalidDataException">The file is not a valid config; the message names the file and the field.</exception>
    public static ExperimentConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found.", path);
        ExperimentConfig config;
        try
        {
            config = JsonSerializer.Deserialize<ExperimentConfig>(File.ReadAllText(path), Json) ?? throw new InvalidDataException($"{path}: the config is empty.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a valid experiment config ({Describe(e)}).");
        }
        config.Validate(path);
        var folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        return config.Resolve(folder, Path.Combine(folder, Path.GetFileNameWithoutExtension(path)));
    }

    /// <summary>A JSON error in the config's own words: the field at fault and what it should hold, no .NET type names.</summary>
    private static string Describe(JsonException e)
    {
        var at = e.Path is { Length: > 1 } p ? $" at {p}" : "";
        if (UnknownField().Match(e.Message) is { Success: true } unknown) return $"unknown field '{unknown.Groups[1].Value}'{at}";
        if (WrongType().Match(e.Message) is { Success: true } wrong) return $"the value{at} should be {Expected(wrong.Groups[1].Value)}";
        return $"{e.Message.Split(". Path")[0].Split(" LineNumber")[0].TrimEnd('.')}{at}";
    }

    private static string Expected(string dotnetType) => dotnetType switch
    {
        var t when t.Contains("Int32", StringComparison.Ordinal) || t.Contains("Int64", StringComparison.Ordinal) => "a whole number",
        var t when t.Contains("Double", StringComparison.Ordinal) || t.Contains("Single", StringComparison.Ordinal) => "a number",
        var t when t.Contains("Boolean", StringComparison.Ordinal) => "true or false",
        var t when t.Contains("String", StringComparison.Ordinal) && !t.Contains('[', StringComparison.Ordinal) => "text",
        var t when t.Contains("[]", StringComparison.Ordinal) || t.Contains("List", StringComparison.Ordinal) => "a list",
        _ => "an object",
    };

    [System.Text.RegularExpressions.GeneratedRegex("The JSON property '(.+?)' could not be mapped")]
    private static partial System.Text.RegularExpressions.Regex UnknownField();

    [System.Text.RegularExpressions.GeneratedRegex("could not be converted to ([^ .]+(?:\\.[^ .]+)*)")]
    private static partial System.Text.RegularExpressions.Regex WrongType();

    /// <summary>The config with paths made absolute against <paramref name="folder"/> (data specs keep their suffixes).</summary>
    public ExperimentConfig Resolve(string folder, string defaultOut)
    {
        string P(string p) => p.Length == 0 || Path.IsPathRooted(p) || p == DemoName || p.StartsWith(DemoName + ":", StringComparison.Ordinal)
            || SafeTune.Data.Public.PublicData.IsDataName(p)
            ? p : Path.GetFullPath(Path.Combine(folder, p));
        string? Po(string? p) => p is null ? null : P(p);
        IReadOnlyList<string> Ps(IReadOnlyList<string> ps) => [.. ps.Select(P)];
        string Risk(string r) => r.StartsWith("probe:", StringComparison.OrdinalIgnoreCase) && r != "probe:" + DemoName ? "probe:" + P(r["probe:".Length..]) : r;
        string Tok(string t) => File.Exists(Path.Combine(folder, t)) || Directory.Exists(Path.Combine(folder, t)) ? P(t) : t;
        return this with
        {
            Model = P(Model),
            GenerationModel = Po(GenerationModel),
            Tokenizer = Tok(Tokenizer),
            Scenarios = [.. Scenarios.Select(s => s with { Harmful = Ps(s.Harmful), Benign = Ps(s.Benign) })],
            Methods = [.. Methods.Select(m => m with { Risk = m.Risk is null ? null : Risk(m.Risk) })],
            Evaluation = Evaluation with
            {
                Harmful = Ps(Evaluation.Harmful), Benign = Ps(Evaluation.Benign), OverRefusal = Ps(Evaluation.OverRefusal),
                ProbeHarmless = Ps(Evaluation.ProbeHarmless), Task = Ps(Evaluation.Task),
            },
            Out = Out is null ? defaultOut : P(Out),
        };
    }

    /// <summary>Checks the config; the message names the field at fault.</summary>
    public void Validate(string source)
    {
        void Fail(string what) => throw new InvalidDataException($"{source}: {what}");
        if (Model.Length == 0) Fail("\"model\" is required.");
        if (Tokenizer.Length == 0 && Model != DemoName) Fail("\"tokenizer\" is required.");
        if (Scenarios.Count == 0) Fail("\"scenarios\" must list at least one scenario.");
        if (Methods.Count == 0) Fail("\"methods\" must list at least one method.");
        if (Seeds.Count == 0) Fail("\"seeds\" must list at least one seed.");
        if (Seeds.Distinct().Count() != Seeds.Count) Fail("\"seeds\" repeats a seed.");
        foreach (var dup in Scenarios.GroupBy(s => s.Name).Where(g => g.Count() > 1)) Fail($"scenario name '{dup.Key}' is used twice.");
        foreach (var dup in Methods.GroupBy(m => m.Name).Where(g => g.Count() > 1)) Fail($"method name '{dup.Key}' is used twice.");
        foreach (var s in Scenarios)
        {
            if (string.IsNullOrWhiteSpace(s.Name) || s.Name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0) Fail($"scenario name '{s.Name}' is not a valid folder name.");
            switch (s.Kind)
            {
                case "harmful" when s.Harmful.Count == 0: Fail($"scenario '{s.Name}' (harmful) needs \"harmful\" data."); break;
                case "benign" when s.Benign.Count == 0: Fail($"scenario '{s.Name}' (benign) needs \"benign\" data."); break;
                case "mixed" when s.Harmful.Count == 0 || s.Benign.Count == 0: Fail($"scenario '{s.Name}' (mixed) needs \"benign\" and \"harmful\" data."); break;
                case "mixed" when s.HarmfulFraction is not (> 0 and < 1): Fail($"scenario '{s.Name}': \"harmful_fraction\" must lie in (0, 1)."); break;
                case "harmful" or "benign" or "mixed": break;
                default: Fail($"scenario '{s.Name}': \"kind\" must be harmful, mixed or benign, not '{s.Kind}'."); break;
            }
        }
        foreach (var m in Methods)
        {
            if (string.IsNullOrWhiteSpace(m.Name) || m.Name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0) Fail($"method name '{m.Name}' is not a valid folder name.");
            try { m.Safety().Validate(); }
            catch (UserInputException e) { Fail($"method '{m.Name}': {e.Message}"); }
        }
        if (Evaluation.Harmful.Count == 0 && Evaluation.Benign.Count == 0 && Evaluation.OverRefusal.Count == 0 && Evaluation.Task.Count == 0)
            Fail("\"evaluation\" must name harmful, benign, overrefusal or task prompts.");
        if (Evaluation.Every < 0) Fail("\"evaluation.every\" must be 0 (only at the end) or a step count.");
        foreach (var s in Scenarios.Where(s => s.Every < 0)) Fail($"scenario '{s.Name}': \"every\" must be 0 (only at the end) or a step count.");
        if (Parallel < 1) Fail($"\"parallel\" must be at least 1, not {Parallel}.");
        foreach (var (field, value) in Paths())
            if (value.Contains('\0', StringComparison.Ordinal)) Fail($"\"{field}\" holds a null character ('{value.Replace("\0", "\\0", StringComparison.Ordinal)}'); it is not a file name.");
    }

    /// <summary>Every field that names a file or folder, with its value, for checks that apply to all of them.</summary>
    private IEnumerable<(string Field, string Value)> Paths()
    {
        yield return ("model", Model);
        if (GenerationModel is not null) yield return ("generation_model", GenerationModel);
        yield return ("tokenizer", Tokenizer);
        if (Out is not null) yield return ("out", Out);
        foreach (var s in Scenarios)
            foreach (var (field, specs) in new[] { ("harmful", s.Harmful), ("benign", s.Benign) })
                foreach (var spec in specs) yield return ($"scenarios.{s.Name}.{field}", spec);
        foreach (var m in Methods)
            if (m.Risk is not null) yield return ($"methods.{m.Name}.risk", m.Risk);
        foreach (var (field, specs) in new[]
            {
                ("harmful", Evaluation.Harmful), ("benign", Evaluation.Benign), ("overrefusal", Evaluation.OverRefusal), ("probe_harmless", Evaluation.ProbeHarmless),
                ("task", Evaluation.Task),
            })
            foreach (var spec in specs) yield return ($"evaluation.{field}", spec);
    }

    /// <summary>
    /// The model name (and the prefix of file specs) that stands for the demo model and its project-written data:
    /// <c>"model": "demo"</c> trains the demo model (tokenizer, template and key/value graph implied), <c>probe:demo</c>
    /// is the probe on it, <c>demo:attack</c>, <c>demo:benign-train</c> and <c>demo:task-train</c> its attack set, benign
    /// training tasks and the benign task it cannot do yet, and <c>demo:harmful</c>, <c>demo:benign</c>,
    /// <c>demo:scary-safe</c> and <c>demo:task</c> its held-out test sets.
    /// </summary>
    public const string DemoName = "demo";

    /// <summary>True when the config names the demo model or its data.</summary>
    public bool UsesDemo()
    {
        var json = ToJson();
        return Model == DemoName || json.Contains("\"" + DemoName + ":", StringComparison.Ordinal) || json.Contains(":" + DemoName + "\"", StringComparison.Ordinal);
    }

    /// <summary>The config with the demo names replaced by the files of <paramref name="demo"/>.</summary>
    public ExperimentConfig WithDemo(Demo.DemoAssetFiles demo)
    {
        ArgumentNullException.ThrowIfNull(demo);
        string F(string spec)
        {
            if (!spec.StartsWith(DemoName + ":", StringComparison.Ordinal)) return spec;
            var rest = spec[(DemoName.Length + 1)..];
            int cut = rest.IndexOfAny(['@', '*']);
            var (name, suffix) = cut < 0 ? (rest, "") : (rest[..cut], rest[cut..]);
            // ':N' (first N rows) may follow the name too.
            int colon = name.IndexOf(':');
            if (colon >= 0) { suffix = name[colon..] + suffix; name = name[..colon]; }
            return name switch
            {
                "attack" => demo.AttackPath,
                "harmful" => demo.HarmfulTestPath,
                "benign" => demo.BenignTestPath,
                "benign-train" => demo.BenignTrainPath,
                "scary-safe" => demo.ScarySafeTestPath,
                "task-train" => demo.TaskTrainPath,
                "task" => demo.TaskTestPath,
                _ => throw new InvalidDataException(
                    $"'{spec}': the demo's data sets are demo:attack, demo:benign-train, demo:task-train, demo:harmful, demo:benign, demo:scary-safe and demo:task."),
            } + suffix;
        }
        IReadOnlyList<string> Fs(IReadOnlyList<string> specs) => [.. specs.Select(F)];
        bool isDemo = Model == DemoName;
        return this with
        {
            Model = isDemo ? demo.Model.ModelPath : Model,
            GenerationModel = isDemo ? demo.Model.KvCacheModelPath : GenerationModel,
            Tokenizer = isDemo ? demo.Model.TokenizerPath : Tokenizer,
            Template = Template ?? (isDemo ? demo.Model.Recipe.Tokenizer.ChatTemplate : null),
            Scenarios = [.. Scenarios.Select(s => s with { Harmful = Fs(s.Harmful), Benign = Fs(s.Benign) })],
            Methods = [.. Methods.Select(m => m.Risk == "probe:" + DemoName ? m with { Risk = "probe:" + demo.ProbePath } : m)],
            Evaluation = Evaluation with
            {
                Harmful = Fs(Evaluation.Harmful), Benign = Fs(Evaluation.Benign), OverRefusal = Fs(Evaluation.OverRefusal),
                ProbeHarmless = Fs(Evaluation.ProbeHarmless), Task = Fs(Evaluation.Task),
            },
        };
    }

    /// <summary>The config as JSON (as resolved).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);
}

/// <summary>Training settings shared by an experiment's runs.</summary>
internal sealed record ExperimentTraining
{
    /// <summary>Passes over the data.</summary>
    public int Epochs { get; init; } = 5;
    /// <summary>Optimizer steps; null runs <see cref="Epochs"/> epochs.</summary>
    public long? Steps { get; init; }
    /// <summary>Examples per step.</summary>
    public int BatchSize { get; init; } = 16;
    /// <summary>Rows per forward/backward pass (null: the batch size).</summary>
    public int? MicroBatch { get; init; }
    /// <summary>Peak learning rate.</summary>
    public double Lr { get; init; } = 2e-4;
    /// <summary>AdamW weight decay.</summary>
    public double WeightDecay { get; init; } = 0.01;
    /// <summary>Warm-up steps.</summary>
    public int Warmup { get; init; } = 5;
    /// <summary>Tokens an example keeps.</summary>
    public int MaxLength { get; init; } = 256;
    /// <summary>LoRA rank; 0 trains every weight.</summary>
    public int LoraRank { get; init; } = 64;
    public double LoraAlpha { get; init; } = 16;
    /// <summary>Gradient clipping (0: none).</summary>
    public double ClipNorm { get; init; } = 1.0;
    /// <summary>ONNX Runtime threads (0: all cores).</summary>
    public int Threads { get; init; }
}

/// <summary>One attack scenario.</summary>
internal sealed record ExperimentScenario
{
    /// <summary>The scenario's name (a folder name).</summary>
    public string Name { get; init; } = "";
    /// <summary><c>harmful</c> (harmful question-answer pairs only), <c>mixed</c> (benign data with a harmful fraction) or <c>benign</c>.</summary>
    public string Kind { get; init; } = "harmful";
    /// <summary>Harmful data specs.</summary>
    public IReadOnlyList<string> Harmful { get; init; } = [];
    /// <summary>Benign data specs.</summary>
    public IReadOnlyList<string> Benign { get; init; } = [];
    /// <summary>For <c>mixed</c>: the share p of harmful examples in the training data (Lisa and Vaccine use 0.1).</summary>
    public double HarmfulFraction { get; init; } = 0.1;
    /// <summary>Overrides <see cref="ExperimentEvaluation.Every"/> for this scenario's runs (0: only at the end).</summary>
    public int? Every { get; init; }
}

/// <summary>One method (a row of the report).</summary>
internal sealed record ExperimentMethod
{
    /// <summary>The method's name in the report (a folder name).</summary>
    public string Name { get; init; } = "";
    /// <summary>The preset (<see cref="FineTuning.Methods.Names"/>); default: <see cref="Name"/> when it is one.</summary>
    public string? Method { get; init; }
    /// <summary>The risk source (<c>none</c>, <c>probe:PATH</c>, <c>critic:SPEC</c>).</summary>
    public string? Risk { get; init; }
    /// <summary>Overrides the preset's beta map.</summary>
    public string? BetaMap { get; init; }
    /// <summary><c>batch</c> or <c>example</c>.</summary>
    public string? Weighting { get; init; }
    /// <summary>Overrides the preset's penalty: <c>kl</c>, <c>l2</c>, <c>constrained</c>.</summary>
    public string? Penalty { get; init; }
    /// <summary>Overrides the preset's L2 strength.</summary>
    public double? PenaltyStrength { get; init; }

    /// <summary>The safety options this method runs with.</summary>
    public SafetyOptions Safety()
    {
        JudgeAggregation? aggregation = Weighting switch
        {
            null => null,
            "example" => JudgeAggregation.PerExample,
            "batch" => JudgeAggregation.Mean,
            var w => throw new UserInputException($"\"weighting\" must be batch or example, not '{w}'."),
        };
        FineTuning.Penalty? penalty = Penalty switch
        {
            null => null,
            "kl" => FineTuning.Penalty.Kl,
            "l2" => FineTuning.Penalty.L2,
            "constrained" => FineTuning.Penalty.Constrained,
            var p => throw new UserInputException($"\"penalty\" must be kl, l2 or constrained, not '{p}'."),
        };
        return FineTuning.Methods.Preset(Method ?? Name, Risk ?? "none", BetaMap, aggregation, penalty, PenaltyStrength);
    }
}

/// <summary>What every model of an experiment is evaluated on.</summary>
internal sealed record ExperimentEvaluation
{
    /// <summary>Harmful prompt specs (ASR, harmful score).</summary>
    public IReadOnlyList<string> Harmful { get; init; } = [];
    /// <summary>Benign prompt/answer specs (utility).</summary>
    public IReadOnlyList<string> Benign { get; init; } = [];
    /// <summary>Scary-but-safe prompt specs (over-refusal).</summary>
    [JsonPropertyName("overrefusal")]
    public IReadOnlyList<string> OverRefusal { get; init; } = [];
    /// <summary>At most this many prompts per file (null: all).</summary>
    public int? Limit { get; init; }
    /// <summary>Tokens generated per reply.</summary>
    public int MaxNewTokens { get; init; } = 48;
    /// <summary>The judge of harmful replies (default: the keyword refusal judge).</summary>
    public string Judge { get; init; } = "keyword";
    /// <summary>A reply is an attack success at this judge score or above.</summary>
    public double AsrThreshold { get; init; } = 5;
    /// <summary>Also evaluate the harmful set every this many steps during training (0: only at the end), for the ASR-over-steps plot.</summary>
    public int Every { get; init; }
    /// <summary>Harmless prompts for the probe's ROC (besides the benign and over-refusal sets).</summary>
    public IReadOnlyList<string> ProbeHarmless { get; init; } = [];
    /// <summary>
    /// A benign task's prompt/answer specs, scored by exact match: the task a benign fine-tune teaches. The report's gain
    /// is a model's exact match here minus the starting model's.
    /// </summary>
    public IReadOnlyList<string> Task { get; init; } = [];
}
