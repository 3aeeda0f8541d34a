using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using SafeTune.Data;
using SafeTune.Data.Public;
using SafeTune.Models;
using SafeTune.Models.Demo;
using SafeTune.Safety.Data;

namespace SafeTune.Safety.Critics.Local;

/// <summary>One labelled (prompt, response) pair.</summary>
/// <param name="Prompt">The user's request.</param>
/// <param name="Response">The reply.</param>
/// <param name="Harmful">True when the reply complies with a harmful request.</param>
/// <param name="Group">Where the pair comes from and what kind it is, e.g. <c>advbench/compliant</c> or <c>alpaca/answer</c>.</param>
public sealed record JudgePair(string Prompt, string Response, bool Harmful, string Group);

/// <summary>The judge's training pairs and its held-out test pairs.</summary>
/// <param name="Train">Training pairs, in a fixed order.</param>
/// <param name="Test">Held-out pairs, grouped by <see cref="JudgePair.Group"/>; no test prompt appears in training (after normalisation).</param>
/// <param name="Fingerprint">SHA-256 of the data files read, for the cache key.</param>
public sealed record JudgeDataSet(IReadOnlyList<JudgePair> Train, IReadOnlyList<JudgePair> Test, string Fingerprint);

/// <summary>
/// Builds the local judge's data from the public data sets (read at build time from the mirror or the data cache) and
/// from SafeTune's own text. The classifier must judge compliance with harm, not the prompt alone, so every harmful
/// training prompt appears twice: with a compliant reply (label harmful) and with a refusal (label not harmful).
/// Training: AdvBench goals with their affirmative targets and with refusals; CatQA questions with affirmative openings
/// and with refusals; Alpaca-Libre and Self-Instruct instructions with their answers (some behind an affirmative opening,
/// some refused: both not harmful); scary-but-safe requests written for SafeTune with helpful answers and with
/// affirmative openings (not harmful); the project's prompt lists (<see cref="EmbeddedFiles"/>): benign requests on
/// dangerous-sounding topics with the same affirmative openings (not harmful; a quarter also with a refusal) and plainly
/// harmful requests with those openings (harmful) and with refusals, so that a compliant reply to a sensitive-sounding
/// request is not enough to be harmful, the request has to be; the demo data's training pairs (harmful requests with
/// refusals and with "Sure, here is how to ..." openings, benign and scary-but-safe requests with their answers).
/// Testing, on data the judge never saw and with held-out reply phrasings: HarmfulQA and Do-Not-Answer prompts with
/// openings and refusals, held-out Alpaca answers, XSTest's safe prompts and unsafe contrasts with affirmative openings,
/// the topic-matched benign and harmful requests with affirmative openings, the held-out template groups of the
/// project's prompt lists with affirmative openings, and the demo test pairs. The topic-matched prompts, the held-out
/// groups and the demo test prompts are set aside before any training pair is taken, so no source can bring them into
/// training.
/// </summary>
public static class JudgeData
{
    /// <summary>The files read, relative to the data folder.</summary>
    public static IReadOnlyList<string> Files { get; } =
    [
        "advbench/harmful_behaviors.csv", "catqa/catqa_english.csv", "alpaca_libre/alpaca_libre_ok.jsonl",
        "self_instruct/user_oriented_instructions.jsonl", "harmfulqa/harmfulqa.csv", "do_not_answer/do_not_answer_prompts.csv",
        "xstest/xstest_prompts.csv",
    ];

    /// <summary>
    /// The prompt lists written for SafeTune that the judge reads, embedded in this assembly (written by
    /// <c>ProbeData/make_probe_data.py</c>): <c>hard_negatives.csv</c> and <c>direct_harmful.csv</c> (columns
    /// <c>group, category, prompt</c>; <c>group</c> names the template family) and the held-out <c>topic_matched.csv</c>
    /// (columns <c>topic, label, prompt</c>; <c>label</c> is <c>benign</c> or <c>harmful</c>).
    /// </summary>
    public static IReadOnlyList<string> EmbeddedFiles { get; } = ["hard_negatives.csv", "direct_harmful.csv", "topic_matched.csv"];

    private const string ResourcePrefix = "SafeTune.Safety.ProbeData.";

    /// <summary>The registered public data sets behind <see cref="Files"/>.</summary>
    public static IReadOnlyList<PublicDataSet> Sets => [.. Files.Select(PublicData.Find)];

    /// <summary>
    /// The folder that holds <see cref="Files"/>: the mirror folder named by <see cref="PublicDataStore.MirrorVariable"/>, or
    /// the data cache, after each set has been checked (and fetched when missing).
    /// </summary>
    /// <exception cref="PublicDataException">A set cannot be had; the message names it and the variable to set.</exception>
    public static string FindDataDirectory(CancellationToken cancellation = default)
    {
        using var store = PublicDataStore.Default;
        foreach (var set in Sets) store.Resolve(set, cancellation);
        return store.DataDirectory;
    }

    /// <summary>SHA-256 (hex) over the names and contents of <see cref="Files"/> in <paramref name="dataDirectory"/> and of <see cref="EmbeddedFiles"/>.</summary>
    /// <exception cref="FileNotFoundException">A file is missing; the message names it.</exception>
    public static string Fingerprint(string dataDirectory)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var f in Files)
        {
            var path = Path.Combine(dataDirectory, f);
            if (!File.Exists(path)) throw new FileNotFoundException($"{path}: the local judge needs this data file.", path);
            sha.AppendData(Encoding.UTF8.GetBytes(f + "\n"));
            sha.AppendData(File.ReadAllBytes(path));
        }
        foreach (var f in EmbeddedFiles)
        {
            sha.AppendData(Encoding.UTF8.GetBytes("embedded/" + f + "\n"));
            sha.AppendData(EmbeddedBytes(f));
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>Builds the training and test pairs from <paramref name="dataDirectory"/> with the mix in <paramref name="mix"/>.</summary>
    public static JudgeDataSet Build(string dataDirectory, LocalJudgeDataMix mix)
    {
        ArgumentNullException.ThrowIfNull(dataDirectory);
        ArgumentNullException.ThrowIfNull(mix);
        var fingerprint = Fingerprint(dataDirectory);
        string P(string f) => Path.Combine(dataDirectory, f);
        var rng = new Random(mix.Seed);
        var train = new List<JudgePair>();

        // ---- set aside first: the topic-matched test, a share of the template groups of the project's lists, the demo test ----
        var topicMatched = ReadEmbedded("topic_matched.csv", "label");
        foreach (var (label, _) in topicMatched)
            if (label is not ("benign" or "harmful"))
                throw new InvalidDataException($"topic_matched.csv: label '{label}' is neither benign nor harmful.");
        var (hardNegatives, heldHardNegatives) = SplitByGroup(rng, ReadEmbedded("hard_negatives.csv", "group"), mix.HeldOutGroups);
        var (directHarmful, heldDirectHarmful) = SplitByGroup(rng, ReadEmbedded("direct_harmful.csv", "group"), mix.HeldOutGroups);
        var demoTest = DemoData.Test(mix.DemoSeed);
        // Every training source below skips a prompt already in seen, so what is set aside never reaches training.
        var reserved = topicMatched.Select(t => t.Prompt).Concat(heldHardNegatives).Concat(heldDirectHarmful).Concat(demoTest.Select(e => e.Prompt))
            .Select(Normalize).ToHashSet(StringComparer.Ordinal);
        var seen = new HashSet<string>(reserved, StringComparer.Ordinal);

        // ---- harmful prompts, each with a compliant reply and a refusal ----
        var advGoals = PromptFile.ReadColumn(P("advbench/harmful_behaviors.csv"), "goal");
        var advTargets = PromptFile.ReadColumn(P("advbench/harmful_behaviors.csv"), "target");
        for (int i = 0; i < advGoals.Count; i++)
        {
            if (!seen.Add(Normalize(advGoals[i]))) continue;
            train.Add(new JudgePair(advGoals[i], advTargets[i], true, "advbench/compliant"));
            train.Add(new JudgePair(advGoals[i], Pick(rng, JudgeTemplates.RefusalsTrain), false, "advbench/refusal"));
        }
        foreach (var q in PromptFile.ReadColumn(P("catqa/catqa_english.csv"), "question"))
        {
            if (!seen.Add(Normalize(q))) continue;
            train.Add(new JudgePair(q, Pick(rng, JudgeTemplates.CompliantTrain), true, "catqa/compliant"));
            train.Add(new JudgePair(q, Pick(rng, JudgeTemplates.RefusalsTrain), false, "catqa/refusal"));
        }

        // ---- benign instructions with answers; some behind an affirmative opening, some refused ----
        var alpaca = ReadAlpaca(P("alpaca_libre/alpaca_libre_ok.jsonl")).Where(a => seen.Add(Normalize(a.Prompt))).ToList();
        var alpacaOrder = RandomOrder.Permutation(rng, alpaca.Count);
        int alpacaTrain = Math.Min(mix.AlpacaTrain, alpaca.Count);
        for (int k = 0; k < alpacaTrain; k++)
        {
            var (prompt, answer) = alpaca[alpacaOrder[k]];
            train.Add((k % 6) switch
            {
                0 => new JudgePair(prompt, Pick(rng, JudgeTemplates.BenignPrefixes) + answer, false, "alpaca/opening"),
                1 => new JudgePair(prompt, Pick(rng, JudgeTemplates.NeutralOpeningsTrain), false, "alpaca/opening"),
                2 when k % 12 == 2 => new JudgePair(prompt, Pick(rng, JudgeTemplates.RefusalsTrain), false, "alpaca/refusal"),
                _ => new JudgePair(prompt, answer, false, "alpaca/answer"),
            });
        }
        var alpacaHeld = alpacaOrder.Skip(alpacaTrain).Select(i => alpaca[i]).ToList();
        foreach (var (prompt, answer) in ReadSelfInstruct(P("self_instruct/user_oriented_instructions.jsonl")))
            if (seen.Add(Normalize(prompt))) train.Add(new JudgePair(prompt, answer, false, "self-instruct/answer"));

        // ---- scary-but-safe requests: helpful answers and affirmative openings are both fine ----
        foreach (var (prompt, answer) in JudgeTemplates.ScarySafe)
        {
            if (!seen.Add(Normalize(prompt))) continue;
            train.Add(new JudgePair(prompt, answer, false, "scary-safe/answer"));
            train.Add(new JudgePair(prompt, Pick(rng, JudgeTemplates.NeutralOpeningsTrain), false, "scary-safe/opening"));
            train.Add(new JudgePair(prompt, Pick(rng, JudgeTemplates.BenignPrefixes) + answer, false, "scary-safe/opening"));
        }

        // ---- the project's lists: the same openings after a benign request on a dangerous-sounding topic and after a harmful one ----
        int hardCount = 0;
        foreach (var prompt in hardNegatives)
        {
            if (!seen.Add(Normalize(prompt))) continue;
            train.Add(new JudgePair(prompt, Pick(rng, JudgeTemplates.NeutralOpeningsTrain), false, "hard-negative/opening"));
            if (hardCount++ % 4 == 0) train.Add(new JudgePair(prompt, Pick(rng, JudgeTemplates.RefusalsTrain), false, "hard-negative/refusal"));
        }
        foreach (var prompt in directHarmful)
        {
            if (!seen.Add(Normalize(prompt))) continue;
            train.Add(new JudgePair(prompt, Pick(rng, JudgeTemplates.NeutralOpeningsTrain), true, "direct-harmful/compliant"));
            train.Add(new JudgePair(prompt, Pick(rng, JudgeTemplates.RefusalsTrain), false, "direct-harmful/refusal"));
        }

        // ---- the demo data: the critic scores its fine-tuning batches ----
        var demoTrain = DemoData.Train(mix.DemoSeed);
        var benignDemo = demoTrain.Where(e => e.Kind == DemoKind.Benign).ToList();
        var benignOrder = RandomOrder.Permutation(rng, benignDemo.Count);
        foreach (var e in demoTrain.Where(e => e.Kind != DemoKind.Benign).Concat(benignOrder.Take(240).Select(i => benignDemo[i])))
        {
            if (reserved.Contains(Normalize(e.Prompt))) continue;
            seen.Add(Normalize(e.Prompt));
            if (e.Kind == DemoKind.Harmful)
            {
                train.Add(new JudgePair(e.Prompt, e.Response, false, "demo/refusal"));
                // Half the compliant replies echo the request, half are generic, so the prompt has to be read too.
                train.Add(new JudgePair(e.Prompt, rng.Next(2) == 0 ? DemoCompliance(rng, e.Intent, test: false) : Pick(rng, JudgeTemplates.CompliantTrain),
                    true, "demo/compliant"));
            }
            else if (e.Kind == DemoKind.ScarySafe)
            {
                train.Add(new JudgePair(e.Prompt, e.Response, false, "demo/scary-safe"));
                train.Add(new JudgePair(e.Prompt, Pick(rng, JudgeTemplates.NeutralOpeningsTrain), false, "demo/scary-safe"));
            }
            else train.Add(new JudgePair(e.Prompt, e.Response, false, "demo/benign"));
        }

        // ---- held-out tests: prompts never seen in training, reply phrasings never seen in training ----
        var test = new List<JudgePair>();
        if (mix.TestPerGroup > 0)
        {
            int n = mix.TestPerGroup;
            void PairedTest(string name, IReadOnlyList<string> prompts)
            {
                var fresh = Fresh(prompts, seen);
                foreach (var i in RandomOrder.Permutation(rng, fresh.Count).Take(n))
                {
                    test.Add(new JudgePair(fresh[i], Pick(rng, JudgeTemplates.CompliantTest), true, name + "/compliant"));
                    test.Add(new JudgePair(fresh[i], Pick(rng, JudgeTemplates.RefusalsTest), false, name + "/refusal"));
                }
            }
            PairedTest("harmfulqa", PromptFile.ReadColumn(P("harmfulqa/harmfulqa.csv"), "question"));
            PairedTest("do-not-answer", PromptFile.ReadColumn(P("do_not_answer/do_not_answer_prompts.csv"), "question"));
            foreach (var (prompt, answer) in alpacaHeld.Take(n)) test.Add(new JudgePair(prompt, answer, false, "alpaca/answer"));

            var xsPrompts = PromptFile.ReadColumn(P("xstest/xstest_prompts.csv"), "prompt");
            var xsLabels = PromptFile.ReadColumn(P("xstest/xstest_prompts.csv"), "label");
            var xsSeen = new HashSet<string>(seen, StringComparer.Ordinal);
            for (int i = 0; i < xsPrompts.Count; i++)
            {
                if (!xsSeen.Add(Normalize(xsPrompts[i]))) continue;
                bool unsafeLabel = xsLabels[i].Trim() == "unsafe";
                test.Add(new JudgePair(xsPrompts[i], Pick(rng, JudgeTemplates.CompliantTest), unsafeLabel, unsafeLabel ? "xstest-unsafe/compliant" : "xstest-safe/compliant"));
            }

            // The same held-out openings after benign and harmful requests on the same topics: only the request differs.
            foreach (var (label, prompt) in topicMatched.DistinctBy(t => Normalize(t.Prompt), StringComparer.Ordinal))
            {
                bool harmful = label == "harmful";
                test.Add(new JudgePair(prompt, Pick(rng, JudgeTemplates.CompliantTest), harmful, harmful ? "topic-matched-harmful/compliant" : "topic-matched-benign/compliant"));
            }
            foreach (var prompt in heldHardNegatives.DistinctBy(Normalize, StringComparer.Ordinal))
                test.Add(new JudgePair(prompt, Pick(rng, JudgeTemplates.CompliantTest), false, "held-out-groups-benign/compliant"));
            foreach (var prompt in heldDirectHarmful.DistinctBy(Normalize, StringComparer.Ordinal))
                test.Add(new JudgePair(prompt, Pick(rng, JudgeTemplates.CompliantTest), true, "held-out-groups-harmful/compliant"));

            foreach (var e in demoTest)
            {
                switch (e.Kind)
                {
                    case DemoKind.Harmful:
                        test.Add(new JudgePair(e.Prompt, e.Response, false, "demo/harmful-refusal"));
                        test.Add(new JudgePair(e.Prompt, DemoCompliance(rng, e.Intent, test: true), true, "demo/harmful-compliant"));
                        break;
                    case DemoKind.ScarySafe:
                        test.Add(new JudgePair(e.Prompt, e.Response, false, "demo/scary-safe"));
                        break;
                    default:
                        test.Add(new JudgePair(e.Prompt, e.Response, false, "demo/benign"));
                        break;
                }
            }
            // At most n pairs per group (the demo's benign test set alone has one held-out phrasing per fact).
            var kept = new HashSet<JudgePair>(ReferenceEqualityComparer.Instance);
            foreach (var group in test.GroupBy(p => p.Group).ToList())
            {
                var members = group.ToList();
                var order = members.Count > n ? RandomOrder.Permutation(rng, members.Count).Take(n).Order() : Enumerable.Range(0, members.Count);
                foreach (var i in order) kept.Add(members[i]);
            }
            test.RemoveAll(p => !kept.Contains(p));
        }
        return new JudgeDataSet(train, test, fingerprint);
    }

    /// <summary>Lower case, letters and digits only, single spaces: the key prompts are deduplicated by.</summary>
    public static string Normalize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return DemoData.Normalize(text);
    }

    /// <summary>A compliant "Sure, here is how to ..." reply to a demo harmful intent (content-free), from the training or test phrasings.</summary>
    internal static string DemoCompliance(Random rng, string intent, bool test)
    {
        bool write = intent.StartsWith("write ", StringComparison.Ordinal);
        var templates = write
            ? test ? JudgeTemplates.DemoWriteCompliantTest : JudgeTemplates.DemoWriteCompliantTrain
            : test ? JudgeTemplates.DemoCompliantTest : JudgeTemplates.DemoCompliantTrain;
        var body = write ? intent["write ".Length..] : intent;
        return Pick(rng, templates).Replace("{x}", body, StringComparison.Ordinal);
    }

    /// <summary>Reads <paramref name="file"/> (one of <see cref="EmbeddedFiles"/>) from the assembly: (<paramref name="column"/>, prompt) per row.</summary>
    internal static List<(string Key, string Prompt)> ReadEmbedded(string file, string column)
    {
        var name = "ProbeData/" + file;
        var data = TabularFile.ReadCsvText(name, Encoding.UTF8.GetString(EmbeddedBytes(file)));
        foreach (var c in new[] { column, "prompt" })
            if (data.FindColumn(c) is null) throw new InvalidDataException($"{name}: the header has no column '{c}'; {data.ColumnsFound}");
        return [.. data.Records.Select(r => ((r.GetText(column) ?? "").Trim(), r.GetText("prompt") ?? "")).Where(t => t.Item2.Trim().Length > 0)];
    }

    private static byte[] EmbeddedBytes(string file)
    {
        var assembly = typeof(JudgeData).Assembly;
        using var stream = assembly.GetManifestResourceStream(ResourcePrefix + file)
            ?? throw new InvalidDataException($"ProbeData/{file}: not embedded in {assembly.GetName().Name}.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    /// <summary>
    /// Splits rows by template group: a seeded share <paramref name="heldOut"/> of the distinct groups (at least one when
    /// the share is positive) is held out whole, so no template family has variants on both sides.
    /// </summary>
    private static (List<string> Train, List<string> HeldOut) SplitByGroup(Random rng, List<(string Group, string Prompt)> rows, double heldOut)
    {
        var groups = rows.Select(r => r.Group).Distinct(StringComparer.Ordinal).ToList();
        int count = heldOut > 0 ? Math.Max(1, (int)Math.Round(heldOut * groups.Count)) : 0;
        var held = RandomOrder.Permutation(rng, groups.Count).Take(count).Select(i => groups[i]).ToHashSet(StringComparer.Ordinal);
        return ([.. rows.Where(r => !held.Contains(r.Group)).Select(r => r.Prompt)], [.. rows.Where(r => held.Contains(r.Group)).Select(r => r.Prompt)]);
    }

    private static List<string> Fresh(IReadOnlyList<string> prompts, HashSet<string> seen)
    {
        var local = new HashSet<string>(StringComparer.Ordinal);
        var result = new List<string>();
        foreach (var p in prompts)
        {
            var key = Normalize(p);
            if (key.Length > 0 && !seen.Contains(key) && local.Add(key)) result.Add(p);
        }
        return result;
    }

    private static string Pick(Random rng, string[] options) => options[rng.Next(options.Length)];

    private static List<(string Prompt, string Answer)> ReadAlpaca(string path)
    {
        var result = new List<(string, string)>();
        foreach (var (root, line) in JsonLines(path))
        {
            var instruction = Text(root, "instruction", path, line);
            var output = Text(root, "output", path, line);
            var input = root.TryGetProperty("input", out var i) && i.ValueKind == JsonValueKind.String ? i.GetString()!.Trim() : "";
            if (input is "<noinput>" or "<no input>") input = "";
            if (instruction.Trim().Length == 0 || output.Trim().Length == 0) continue;
            result.Add((input.Length > 0 ? instruction + "\n" + input : instruction, output.Trim()));
        }
        return result;
    }

    private static List<(string Prompt, string Answer)> ReadSelfInstruct(string path)
    {
        var result = new List<(string, string)>();
        foreach (var (root, line) in JsonLines(path))
        {
            var instruction = Text(root, "instruction", path, line);
            if (!root.TryGetProperty("instances", out var inst) || inst.ValueKind != JsonValueKind.Array || inst.GetArrayLength() == 0) continue;
            var first = inst[0];
            var input = first.TryGetProperty("input", out var i) && i.ValueKind == JsonValueKind.String ? i.GetString()!.Trim() : "";
            var output = first.TryGetProperty("output", out var o) && o.ValueKind == JsonValueKind.String ? o.GetString()!.Trim() : "";
            if (output.Length == 0) continue;
            result.Add((input.Length > 0 ? instruction + "\n" + input : instruction, output));
        }
        return result;
    }

    private static IEnumerable<(JsonElement Root, int Line)> JsonLines(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file", path);
        int n = 0;
        foreach (var raw in File.ReadLines(path, Encoding.UTF8))
        {
            n++;
            var line = raw.Trim().TrimStart('\uFEFF');
            if (line.Length == 0) continue;
            JsonDocument doc;
            try { doc = JsonDocument.Parse(line); }
            catch (JsonException e) { throw new InvalidDataException($"{path}: line {n} is not valid JSON: {e.Message}", e); }
            using (doc)
            {
                if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{path}: line {n} is not a JSON object");
                yield return (doc.RootElement.Clone(), n);
            }
        }
    }

    private static string Text(JsonElement root, string field, string path, int line) =>
        root.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()!
            : throw new InvalidDataException($"{path}: line {line} has no string field '{field}'");
}
