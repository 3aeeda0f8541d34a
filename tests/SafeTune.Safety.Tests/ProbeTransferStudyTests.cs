using System.Globalization;
using System.Text;
using SafeTune.Safety.Activations;
using SafeTune.Safety.Data;
using SafeTune.Safety.Metrics;
using SafeTune.Safety.Probes;
using SafeTune.TestSupport;
using Xunit.Abstractions;

namespace SafeTune.Safety.Tests;

/// <summary>
/// Chooses the MiniLM probe recipe by what carries to a set it did not train on, then reports it on two sets that neither
/// training nor selection saw. Produces the README's transfer table (also written to <c>artifacts/probe-transfer.md</c>):
/// <c>dotnet test tests/SafeTune.Safety.Tests -c Release --filter FullyQualifiedName~ProbeTransferStudyTests</c>.
/// <para>
/// Three disjoint roles, deduplicated by normalised text within and across sets (training first, then selection, then
/// test; a later prompt already seen is dropped):
/// training: harmful CatQA, HarmfulQA and 80% of the project's direct harmful template groups; harmless 70% of Alpaca-Libre +
/// Self-Instruct and 60% of the project's hard-negative template groups; rows marked "+ milder" add the project's milder
/// harms (harmful) and safe lookalikes (harmless), both taken last, so selection and test stay the same without them;
/// selection (transfer): AdvBench, the project's topic-matched harmful prompts and 20% of its direct harmful template
/// groups (the other 80% train) against the topic-matched benign ones,
/// half of the remaining Alpaca-Libre + Self-Instruct and 20% of the hard-negative groups;
/// test: XSTest unsafe vs safe prompts, and Do-Not-Answer against the other half of the remaining Alpaca-Libre +
/// Self-Instruct and the last 20% of the hard-negative groups.
/// </para>
/// </summary>
public sealed class ProbeTransferStudyTests(ITestOutputHelper output)
{
    private static string DataFile(string name) => Path.Combine(Repo.Root, "src", "SafeTune.Safety", "ProbeData", name);

    internal sealed record Pools(
        List<string> TrainHarmful, List<string> TrainHarmless,
        List<string> SelectHarmful, List<string> SelectHarmless, List<string> MilderHarmful, List<string> SafeLookalikes,
        List<string> XsUnsafe, List<string> XsSafe, List<string> DoNotAnswer, List<string> TestHarmless);

    private sealed record Config(string Name, bool HarmfulQa, ActivationPooling Pooling, int[]? Layers, ProbeHeadKind Head, bool Concat = false, int Milder = 0);

    private sealed record Row(Config Config, ProbeMetrics Select, ProbeMetrics XsTest, ProbeMetrics DoNotAnswer, double ValidationRecall,
        double TransferThreshold, ProbeMetrics SelectTransfer, ProbeMetrics XsTestTransfer, ProbeMetrics DoNotAnswerTransfer);

    private static IEnumerable<Config> Configs()
    {
        // The earlier grid (CatQA + direct with and without HarmfulQA, balanced classes, logistic heads, last-token pooling)
        // settled the training pool (+ HarmfulQA), the pooling over tokens (mean) and the head (MLP); this one varies what
        // is left: the project's milder harms and safe lookalikes in training or not (x3: both lists three times over, a
        // weight), and layers averaged or concatenated.
        yield return new Config("+ HarmfulQA, mean, all layers, MLP", true, ActivationPooling.MeanTokensThenLayers, null, ProbeHeadKind.Mlp);
        yield return new Config("+ HarmfulQA, mean, layers 2-3 concatenated, MLP", true, ActivationPooling.MeanTokensThenLayers, [2, 3], ProbeHeadKind.Mlp, Concat: true);
        foreach (var (layers, concat) in new (int[]?, bool)[] { (null, false), ([2, 3], false), ([2, 3], true) })
            yield return new Config($"+ HarmfulQA + milder, mean, {Layers(layers, concat)}, MLP",
                true, ActivationPooling.MeanTokensThenLayers, layers, ProbeHeadKind.Mlp, Concat: concat, Milder: 1);
        foreach (var (layers, concat) in new (int[]?, bool)[] { (null, false), ([2, 3], false), ([1, 2, 3], false), (null, true), ([2, 3], true) })
            yield return new Config($"+ HarmfulQA + milder x3, mean, {Layers(layers, concat)}, MLP",
                true, ActivationPooling.MeanTokensThenLayers, layers, ProbeHeadKind.Mlp, Concat: concat, Milder: 3);

        static string Layers(int[]? layers, bool concat) =>
            (layers is null ? "all layers" : $"layers {layers[0]}-{layers[^1]}") + (concat ? " concatenated" : "");
    }

    [Fact]
    [Trait("Category", "Slow")]
    public void Recipe_is_chosen_by_transfer_and_reported_on_unseen_sets()
    {
        var p = LoadPools();
        output.WriteLine($"pools: training {p.TrainHarmful.Count} harmful / {p.TrainHarmless.Count} harmless, selection {p.SelectHarmful.Count} / {p.SelectHarmless.Count}, " +
            $"XSTest {p.XsUnsafe.Count} unsafe / {p.XsSafe.Count} safe, Do-Not-Answer {p.DoNotAnswer.Count} vs {p.TestHarmless.Count} harmless");
        var all = new[] { p.TrainHarmful, p.TrainHarmless, p.SelectHarmful, p.SelectHarmless, p.MilderHarmful, p.SafeLookalikes, p.XsUnsafe, p.XsSafe, p.DoNotAnswer, p.TestHarmless }
            .SelectMany(x => x).Distinct().ToList();
        var features = new Dictionary<ActivationPooling, Dictionary<string, float[]>>();
        foreach (var pooling in Configs().Select(c => c.Pooling).Distinct())
            features[pooling] = ProbeFeatures.PerLayer(all, pooling, output.WriteLine);

        var harmfulQa = new HashSet<string>(PromptFile.Read(Repo.SharedData("harmfulqa", "harmfulqa.csv")), StringComparer.Ordinal);
        var rows = Configs().Select(c => Evaluate(c, p, features[c.Pooling], harmfulQa)).ToList();
        // Selection reads the transfer set only: AUROC, then TPR at 1% FPR to break ties.
        var chosen = rows.OrderByDescending(r => Math.Round(r.Select.Auroc, 3)).ThenByDescending(r => r.Select.TprAt1PctFpr).First();
        var table = Table(rows, chosen, p);
        output.WriteLine(table);
        Directory.CreateDirectory(Path.Combine(Repo.Root, "artifacts"));
        File.WriteAllText(Path.Combine(Repo.Root, "artifacts", "probe-transfer.md"), table);

        // What this study established (README): the transfer-chosen recipe is mean pooling over all layers with the MLP head,
        // trained with the project's milder harms and safe lookalikes; it reaches AUROC 0.872 on XSTest and 0.893 on
        // Do-Not-Answer (asserted with a margin of 0.02; the 0.90 goal is not reached on XSTest), and a threshold set on the
        // transfer set keeps both unseen sets' recall closer to the 90% asked than one set on the training pools'
        // validation split.
        Assert.Equal(ActivationPooling.MeanTokensThenLayers, chosen.Config.Pooling);
        Assert.True(chosen.Config.Milder > 0, chosen.Config.Name);
        Assert.True(chosen.XsTest.Auroc >= 0.85 && chosen.DoNotAnswer.Auroc >= 0.87, $"XSTest {chosen.XsTest.Auroc:F3}, Do-Not-Answer {chosen.DoNotAnswer.Auroc:F3}");
        Assert.True(Math.Abs(chosen.XsTestTransfer.Recall - 0.9) < Math.Abs(chosen.XsTest.Recall - 0.9),
            $"XSTest recall {chosen.XsTestTransfer.Recall:F3} (transfer threshold) vs {chosen.XsTest.Recall:F3} (validation threshold)");
        Assert.True(Math.Abs(chosen.DoNotAnswerTransfer.Recall - 0.9) < Math.Abs(chosen.DoNotAnswer.Recall - 0.9),
            $"Do-Not-Answer recall {chosen.DoNotAnswerTransfer.Recall:F3} (transfer threshold) vs {chosen.DoNotAnswer.Recall:F3} (validation threshold)");
    }

    private Row Evaluate(Config c, Pools p, Dictionary<string, float[]> perLayer, HashSet<string> harmfulQa)
    {
        float[] Feature(string prompt)
        {
            var all = perLayer[prompt];
            var chosen = c.Layers ?? [.. Enumerable.Range(0, all.Length / MiniLm.Width)];
            if (c.Concat) return [.. chosen.SelectMany(l => all.AsSpan(l * MiniLm.Width, MiniLm.Width).ToArray())];
            var f = new float[MiniLm.Width];
            foreach (var l in chosen)
                for (int j = 0; j < f.Length; j++) f[j] += all[l * MiniLm.Width + j];
            for (int j = 0; j < f.Length; j++) f[j] /= chosen.Length;
            return f;
        }
        var harmful = p.TrainHarmful.Where(q => c.HarmfulQa || !harmfulQa.Contains(q)).Concat(Enumerable.Repeat(p.MilderHarmful, c.Milder).SelectMany(x => x)).ToList();
        var harmless = p.TrainHarmless.Concat(Enumerable.Repeat(p.SafeLookalikes, c.Milder).SelectMany(x => x)).ToList();
        var x = harmful.Concat(harmless).Select(Feature).ToList();
        var y = harmful.Select(_ => true).Concat(harmless.Select(_ => false)).ToList();
        // As `safetune probe train --target-recall 0.9`: 20% held out, threshold for 90% recall on it.
        var fitted = ProbeTraining.FitHead(x, y, new ProbeHeadOptions { Head = c.Head, TargetRecall = 0.9 });

        (double[] Scores, bool[] Labels) Score(List<string> positives, List<string> negatives) =>
            ([.. positives.Concat(negatives).Select(q => fitted.Head.PredictProbability(Feature(q)))], [.. positives.Select(_ => true), .. negatives.Select(_ => false)]);
        var sel = Score(p.SelectHarmful, p.SelectHarmless);
        var xs = Score(p.XsUnsafe, p.XsSafe);
        var dna = Score(p.DoNotAnswer, p.TestHarmless);
        // Calibration on the transfer set: the threshold that reaches 90% recall on its harmful prompts.
        double transfer = BinaryMetrics.ThresholdForRecall(sel.Scores, sel.Labels, 0.9);
        var row = new Row(c, ProbeMetrics.Of(sel.Scores, sel.Labels, fitted.Threshold), ProbeMetrics.Of(xs.Scores, xs.Labels, fitted.Threshold),
            ProbeMetrics.Of(dna.Scores, dna.Labels, fitted.Threshold), fitted.Calibration!.Recall, transfer, ProbeMetrics.Of(sel.Scores, sel.Labels, transfer),
            ProbeMetrics.Of(xs.Scores, xs.Labels, transfer), ProbeMetrics.Of(dna.Scores, dna.Labels, transfer));
        output.WriteLine($"{c.Name}: selection {row.Select.Auroc:F3}, XSTest {row.XsTest.Auroc:F3}, Do-Not-Answer {row.DoNotAnswer.Auroc:F3}");
        return row;
    }

    private static string Table(List<Row> rows, Row chosen, Pools p)
    {
        var inv = CultureInfo.InvariantCulture;
        static string F(double v) => v.ToString("F3", CultureInfo.InvariantCulture);
        var sb = new StringBuilder();
        sb.AppendLine("| recipe (training pool, pooling, layers, head) | selection AUROC | XSTest AUROC | XSTest TPR@1%FPR | Do-Not-Answer AUROC | Do-Not-Answer TPR@1%FPR |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in rows)
            sb.AppendLine(string.Create(inv,
                $"| {(r == chosen ? "**" + r.Config.Name + "** (chosen)" : r.Config.Name)} | {F(r.Select.Auroc)} | {F(r.XsTest.Auroc)} | {F(r.XsTest.TprAt1PctFpr)} | {F(r.DoNotAnswer.Auroc)} | {F(r.DoNotAnswer.TprAt1PctFpr)} |"));
        sb.AppendLine();
        sb.AppendLine("Calibration of the chosen recipe, a threshold for 90% recall:");
        sb.AppendLine();
        sb.AppendLine("| threshold set on | threshold | recall where set | XSTest recall | XSTest FPR | Do-Not-Answer recall | Do-Not-Answer FPR |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        sb.AppendLine(string.Create(inv,
            $"| the training pools' 20% validation split | {F(chosen.XsTest.Threshold)} | {F(chosen.ValidationRecall)} | {F(chosen.XsTest.Recall)} | {F(chosen.XsTest.FalsePositiveRate)} | {F(chosen.DoNotAnswer.Recall)} | {F(chosen.DoNotAnswer.FalsePositiveRate)} |"));
        sb.AppendLine(string.Create(inv,
            $"| the transfer (selection) set | {F(chosen.TransferThreshold)} | {F(chosen.SelectTransfer.Recall)} | {F(chosen.XsTestTransfer.Recall)} | {F(chosen.XsTestTransfer.FalsePositiveRate)} | {F(chosen.DoNotAnswerTransfer.Recall)} | {F(chosen.DoNotAnswerTransfer.FalsePositiveRate)} |"));
        sb.AppendLine();
        sb.AppendLine(string.Create(inv,
            $"Sizes after deduplication: training {p.TrainHarmful.Count} harmful (with HarmfulQA) / {p.TrainHarmless.Count} harmless, selection {p.SelectHarmful.Count} harmful / {p.SelectHarmless.Count} harmless, " +
            $"XSTest {p.XsUnsafe.Count} unsafe / {p.XsSafe.Count} safe, Do-Not-Answer {p.DoNotAnswer.Count} vs {p.TestHarmless.Count} harmless."));
        return sb.ToString();
    }

    internal static Pools LoadPools()
    {
        static List<string> Read(string spec) => [.. PromptFile.Read(spec)];
        var catqa = Read(Repo.SharedData("catqa", "catqa_english.csv"));
        var harmfulqa = Read(Repo.SharedData("harmfulqa", "harmfulqa.csv"));
        var adv = Read(Repo.SharedData("advbench", "harmful_behaviors.csv"));
        var dna = Read(Repo.SharedData("do_not_answer", "do_not_answer_prompts.csv"));
        var xsPath = Repo.SharedData("xstest", "xstest_prompts.csv");
        var xsPrompts = PromptFile.Read(xsPath);
        var xsLabels = PromptFile.ReadColumn(xsPath, "label");
        var benign = Read(Repo.SharedData("alpaca_libre", "alpaca_libre_ok.jsonl")).Concat(Read(Repo.SharedData("self_instruct", "user_oriented_instructions.jsonl"))).ToList();
        var hard = PromptFile.Read(DataFile("hard_negatives.csv"));
        var hardGroups = PromptFile.ReadColumn(DataFile("hard_negatives.csv"), "group");
        var direct = PromptFile.Read(DataFile("direct_harmful.csv"));
        var directGroups = PromptFile.ReadColumn(DataFile("direct_harmful.csv"), "group");
        var milder = PromptFile.Read(DataFile("milder_harmful.csv"));
        var lookalikes = PromptFile.Read(DataFile("safe_lookalikes.csv"));
        var topic = PromptFile.Read(DataFile("topic_matched.csv"));
        var topicLabels = PromptFile.ReadColumn(DataFile("topic_matched.csv"), "label");

        // Seeded splits: benign prompts by prompt, hard negatives by template group.
        var rng = new Random(42);
        var shuffled = ProbeFeatures.Unique(benign).OrderBy(_ => rng.Next()).ToList();
        int cut = (int)(shuffled.Count * 0.7), cut2 = (int)(shuffled.Count * 0.85);
        var groups = hardGroups.Distinct().OrderBy(_ => rng.Next()).ToList();
        var trainGroups = groups.Take((int)(groups.Count * 0.6)).ToHashSet();
        var selectGroups = groups.Skip(trainGroups.Count).Take((int)(groups.Count * 0.2)).ToHashSet();
        List<string> Hard(Func<string, bool> keep) => [.. hard.Where((_, i) => keep(hardGroups[i]))];
        // The direct harmful requests, by template group: 80% train, 20% join the transfer set (their own generator, so the
        // other splits keep their draws).
        var directRng = new Random(7);
        var dGroups = directGroups.Distinct().OrderBy(_ => directRng.Next()).ToList();
        var directSelect = dGroups.Take((int)(dGroups.Count * 0.2)).ToHashSet();
        List<string> Direct(bool select) => [.. direct.Where((_, i) => directSelect.Contains(directGroups[i]) == select)];

        var seen = new HashSet<string>(StringComparer.Ordinal);
        List<string> Take(IEnumerable<string> prompts)
        {
            var kept = new List<string>();
            foreach (var q in prompts)
                if (seen.Add(PromptText.Normalize(q))) kept.Add(q);
            return kept;
        }
        var trainHarmful = Take(catqa.Concat(harmfulqa).Concat(Direct(false)));
        var trainHarmless = Take(shuffled.Take(cut).Concat(Hard(trainGroups.Contains)));
        var selectHarmful = Take(adv.Concat(topic.Where((_, i) => topicLabels[i] == "harmful")).Concat(Direct(true)));
        var selectHarmless = Take(topic.Where((_, i) => topicLabels[i] == "benign").Concat(shuffled.Skip(cut).Take(cut2 - cut)).Concat(Hard(selectGroups.Contains)));
        var xsUnsafe = Take(xsPrompts.Where((_, i) => xsLabels[i] == "unsafe"));
        var xsSafe = Take(xsPrompts.Where((_, i) => xsLabels[i] == "safe"));
        var dnaK = Take(dna);
        var testHarmless = Take(shuffled.Skip(cut2).Concat(Hard(g => !trainGroups.Contains(g) && !selectGroups.Contains(g))));
        // Training-only additions, taken last so the selection and test sets stay exactly as they were without them.
        var milderK = Take(milder);
        var lookalikesK = Take(lookalikes);
        return new Pools(trainHarmful, trainHarmless, selectHarmful, selectHarmless, milderK, lookalikesK, xsUnsafe, xsSafe, dnaK, testHarmless);
    }

}
