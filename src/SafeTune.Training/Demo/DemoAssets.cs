using System.Text.Json.Nodes;
using SafeTune.Models.Demo;
using SafeTune.Onnx;
using SafeTune.Safety.Critics.Local;
using SafeTune.Safety.Data;
using SafeTune.Safety.Probes;

namespace SafeTune.Training.Demo;

/// <summary>What the demo works with: the aligned demo model, the project's own data as files, and a probe on the model.</summary>
/// <param name="Model">The demo model (built once and cached).</param>
/// <param name="AttackPath">The harmful fine-tuning attack: harmful requests from the training split with compliant targets (JSONL prompt/response).</param>
/// <param name="HarmfulTestPath">Held-out harmful requests (intents never seen in training), one per line.</param>
/// <param name="BenignTestPath">Held-out benign requests with their reference answers (JSONL prompt/response).</param>
/// <param name="ScarySafeTestPath">Held-out scary-but-safe requests, one per line: a refusal here is an over-refusal.</param>
/// <param name="ProbePath">The activation probe trained on the demo model's prompt activations.</param>
/// <param name="ProbeHarmfulPath">The probe's harmful training prompts (the demo's training split, CatQA's and HarmfulQA's questions and the project's milder harms), one per line.</param>
/// <param name="ProbeHarmlessPath">The probe's harmless training prompts (training split: benign and scary-but-safe), one per line.</param>
/// <param name="BenignTrainPath">The benign tasks of the training split with their answers (JSONL prompt/response): benign fine-tuning data.</param>
/// <param name="TaskTrainPath">The benign task the starting model cannot do yet (<see cref="DemoTask.Train"/>, JSONL prompt/response): the benign scenario's data.</param>
/// <param name="TaskTestPath">The task's held-out phrasings with their answers (<see cref="DemoTask.Test"/>, JSONL prompt/response): the benign gain is measured on it.</param>
internal sealed record DemoAssetFiles(DemoModelFiles Model, string AttackPath, string HarmfulTestPath, string BenignTestPath, string ScarySafeTestPath,
    string ProbePath, string ProbeHarmfulPath, string ProbeHarmlessPath, string BenignTrainPath, string TaskTrainPath, string TaskTestPath);

/// <summary>Progress of <see cref="DemoAssets.Prepare"/>.</summary>
/// <param name="Stage"><c>model</c>, <c>data</c> or <c>probe</c>.</param>
/// <param name="Detail">What is happening.</param>
internal sealed record DemoAssetProgress(string Stage, string Detail);

/// <summary>
/// Prepares the demo's inputs in a cache folder: builds or loads the demo model (<see cref="DemoModel.BuildOrLoad"/>),
/// writes the project's demo data as files (the attack set and the held-out evaluation sets, from <see cref="DemoData"/>;
/// the benign task and its held-out test, from <see cref="DemoTask"/>),
/// and trains the activation probe on the model's own prompt activations (harmful vs benign and scary-but-safe
/// training prompts, the harmful side widened with public harmful questions worded otherwise, rendered with the model's
/// chat template). Everything is deterministic and written atomically; a probe made for another model, other data or an
/// earlier probe recipe (<see cref="DemoAssets.ProbeKey"/>) is retrained.
/// </summary>
internal static class DemoAssets
{
    /// <summary>Attack examples, as the paper's 300 harmful question-answer pairs.</summary>
    public const int AttackSize = 300;

    /// <summary>Prepares (or reuses) the assets in <paramref name="cacheDirectory"/>.</summary>
    /// <param name="cacheDirectory">The demo's cache folder.</param>
    /// <param name="progress">Reports each stage.</param>
    /// <param name="modelProgress">Reports the demo model's build.</param>
    /// <param name="publicDataDirectory">The folder holding the public data sets (<see cref="JudgeData.Files"/>); null finds
    /// it with <see cref="JudgeData.FindDataDirectory"/> (checked, fetched when missing).</param>
    public static DemoAssetFiles Prepare(string cacheDirectory, IProgress<DemoAssetProgress>? progress = null, IProgress<DemoProgress>? modelProgress = null,
        string? publicDataDirectory = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(cacheDirectory);
        var root = Path.GetFullPath(cacheDirectory);
        progress?.Report(new DemoAssetProgress("model", "building or loading the demo model"));
        // The assets folder is ROOT/demo, so the model lands where DemoModel.CacheFolder(ROOT) looks.
        var model = DemoModel.BuildOrLoad(Path.Combine(root, "model"), modelProgress);
        int dataSeed = model.Recipe.Data.Seed;

        progress?.Report(new DemoAssetProgress("data", "writing the demo data"));
        var data = Path.Combine(root, "data");
        Directory.CreateDirectory(data);
        var train = DemoData.Train(dataSeed);
        var test = DemoData.Test(dataSeed);
        string attack = WriteJsonl(Path.Combine(data, "attack.jsonl"), DemoData.Attack(dataSeed, AttackSize, seed: 1).Select(e => (e.Prompt, e.Response)));
        string harmfulTest = WriteLines(Path.Combine(data, "harmful_test.txt"), test.Where(e => e.Kind == DemoKind.Harmful).Select(e => e.Prompt));
        string benignTest = WriteJsonl(Path.Combine(data, "benign_test.jsonl"), test.Where(e => e.Kind == DemoKind.Benign).Select(e => (e.Prompt, e.Response)));
        string scaryTest = WriteLines(Path.Combine(data, "scary_safe_test.txt"), test.Where(e => e.Kind == DemoKind.ScarySafe).Select(e => e.Prompt));
        string benignTrain = WriteJsonl(Path.Combine(data, "benign_train.jsonl"), train.Where(e => e.Kind == DemoKind.Benign).DistinctBy(e => e.Prompt).Select(e => (e.Prompt, e.Response)));
        // The probe's harmful side: the demo's own harmful requests, and harmful questions worded otherwise (CatQA,
        // HarmfulQA, the project's milder harms), so that it also reads attacks phrased unlike the demo data (never AdvBench).
        publicDataDirectory ??= JudgeData.FindDataDirectory();
        var publicHarmful = PublicHarmfulQuestions(publicDataDirectory);
        string probeHarmful = WriteLines(Path.Combine(data, "probe_harmful.txt"),
            train.Where(e => e.Kind == DemoKind.Harmful).Select(e => e.Prompt).Concat(publicHarmful).Concat(ProjectPrompts.MilderHarmful()).Distinct());
        string probeHarmless = WriteLines(Path.Combine(data, "probe_harmless.txt"), train.Where(e => e.Kind != DemoKind.Harmful).Select(e => e.Prompt).Distinct());
        string taskTrain = WriteJsonl(Path.Combine(data, "task_train.jsonl"), DemoTask.Train(dataSeed).Select(e => (e.Prompt, e.Response)));
        string taskTest = WriteJsonl(Path.Combine(data, "task_test.jsonl"), DemoTask.Test(dataSeed).Select(e => (e.Prompt, e.Response)));

        var probePath = Path.Combine(root, "probe.json");
        var probeKey = ProbeKey(model.ModelPath, probeHarmful, probeHarmless);
        if (!ProbeIsCurrent(probePath, probeKey))
        {
            progress?.Report(new DemoAssetProgress("probe", "training the activation probe on the demo model"));
            var trained = ProbeTraining.Train(new ProbeTrainOptions
            {
                ModelPath = model.ModelPath,
                Tokenizer = model.TokenizerPath,
                ChatTemplate = Models.Chat.ChatTemplates.ByName(model.Recipe.Tokenizer.ChatTemplate),
                Harmful = [probeHarmful],
                Harmless = [probeHarmless],
            });
            trained.Probe.Save(probePath);
            // The key last: a run killed between the two files finds no key and trains the probe again.
            AtomicFile.WriteAllText(probePath + ".key", probeKey + "\n");
        }
        return new DemoAssetFiles(model, attack, harmfulTest, benignTest, scaryTest, probePath, probeHarmful, probeHarmless, benignTrain, taskTrain, taskTest);
    }

    /// <summary>
    /// How the demo's probe is trained (its options in <see cref="Prepare"/>); changed whenever they change, so that a
    /// probe cached by an earlier version is trained again.
    /// </summary>
    internal const string ProbeRecipe = "demo-probe/2: logistic head, mean over prompt tokens and all layers, threshold 0.5, chat template; " +
        "harmful: demo, CatQA, HarmfulQA, milder_harmful";

    /// <summary>The public harmful questions the demo's probe also trains on: CatQA's and HarmfulQA's, one line each.</summary>
    internal static IEnumerable<string> PublicHarmfulQuestions(string publicDataDirectory) =>
        ProbePublicFiles.SelectMany(f => PromptFile.ReadColumn(Path.Combine(publicDataDirectory, f), "question"))
            .Select(q => q.ReplaceLineEndings(" ").Trim()).Where(q => q.Length > 0);

    private static readonly string[] ProbePublicFiles = ["catqa/catqa_english.csv", "harmfulqa/harmfulqa.csv"];

    /// <summary>
    /// What a cached probe must have been trained from: <see cref="ProbeRecipe"/>, the model file and both prompt files
    /// (SHA-256 of each, then of the whole), kept beside the probe as <c>probe.json.key</c>.
    /// </summary>
    internal static string ProbeKey(string modelPath, string harmfulPath, string harmlessPath)
    {
        var parts = string.Join('\n', ProbeRecipe, ProbeFile.HashFile(modelPath), ProbeFile.HashFile(harmfulPath), ProbeFile.HashFile(harmlessPath));
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(parts)));
    }

    private static bool ProbeIsCurrent(string probePath, string key)
    {
        var keyPath = probePath + ".key";
        if (!File.Exists(probePath) || !File.Exists(keyPath) || File.ReadAllText(keyPath).Trim() != key) return false;
        try
        {
            ProbeFile.Load(probePath);
            return true;
        }
        catch (InvalidDataException)
        {
            return false;
        }
    }

    private static string WriteJsonl(string path, IEnumerable<(string Prompt, string Response)> rows)
    {
        var lines = rows.Select(r => new JsonObject { ["prompt"] = r.Prompt, ["response"] = r.Response }.ToJsonString());
        AtomicFile.WriteAllText(path, string.Join('\n', lines) + "\n");
        return path;
    }

    private static string WriteLines(string path, IEnumerable<string> lines)
    {
        AtomicFile.WriteAllText(path, string.Join('\n', lines.Select(l => l.ReplaceLineEndings(" "))) + "\n");
        return path;
    }
}
