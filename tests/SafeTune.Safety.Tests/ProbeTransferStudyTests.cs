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
/// Chooses the MiniLM probe recipe by what carries to sets it did not train on, then reports it on two sets that neither
/// training nor selection saw. Produces the README's transfer table (also written to <c>artifacts/probe-transfer.md</c>):
/// <c>dotnet test tests/SafeTune.Safety.Tests -c Release --filter FullyQualifiedName~ProbeTransferStudyTests</c>
/// (with <c>SAFETUNE_DATA_MIRROR</c> naming a folder of the public sets when they are not in the data cache).
/// <para>
/// Three disjoint roles, deduplicated by normalised text within and across sets (training, then broad selection, then
/// test, then the project's newer lists; a later prompt already seen is dropped):
/// training: harmful CatQA, HarmfulQA and 80% of the project's direct harmful template groups; harmless 70% of Alpaca-Libre +
/// Self-Instruct and 60% of the project's hard-negative template groups; rows marked "+ milder" add 70% of the template
/// groups of the project's milder harms (harmful) and safe lookalikes (harmless), rows marked "+ contrast" half of its
/// contrast pairs (both labels of a pair on the same side);
/// broad selection: AdvBench, the project's topic-matched harmful prompts and 20% of its direct harmful template groups
/// against the topic-matched benign ones, half of the remaining Alpaca-Libre + Self-Instruct and 20% of the hard-negative
/// groups; hard selection: the other 30% of the milder-harm and safe-lookalike groups and the other half of the contrast
/// pairs;
/// test: XSTest unsafe vs safe prompts, and Do-Not-Answer against the other half of the remaining Alpaca-Libre +
/// Self-Instruct and the last 20% of the hard-negative groups.
/// The attention-weighted rows fit their query (<see cref="ProbeTraining.FitAttentionPooling"/>) on every token's states
/// of layers 2-3, read once per run and held in memory; the other rows read the cached pooled features.
/// </para>
/// <para>
/// Each recipe is fitted with the seeds in <see cref="Seeds"/> (one, to keep the study within minutes on two cores; more
/// seeds report their means). The recipe with the best mean of the broad and the hard selection AUROC is chosen; the test
/// sets are read only to report it.
/// </para>
/// </summary>
public sealed class ProbeTransferStudyTests(ITestOutputHelper output)
{
    private static string DataFile(string name) => Path.Combine(Repo.Root, "src", "SafeTune.Safety", "ProbeData", name);

    internal sealed record Pools(
        List<string> TrainHarmful, List<string> TrainHarmless,
        List<string> SelectHarmful, List<string> SelectHarmless, List<string> HardHarmful, List<string> HardHarmless,
        List<string> MilderHarmful, List<string> SafeLookalikes, List<string> ContrastHarmful, List<string> ContrastHarmless,
        List<string> XsUnsafe, List<string> XsSafe, List<string> DoNotAnswer, List<string> TestHarmless);

    private sealed record Config(string Name, bool HarmfulQa, ActivationPooling Pooling, int[]? Layers, ProbeHeadKind Head, bool Concat = false, int Milder = 0,
        int Contrast = 0, double AttentionL2 = 0, double WeightDecay = 0.01);

    /// <summary>The layers the attention-weighted rows read (every token's states of these layers are held in memory).</summary>
    private static readonly int[] AttentionLayers = [2, 3];

    /// <summary>The seeds each recipe is fitted with (splits and the MLP's initial weights); the table reports their means.</summary>
    private static readonly int[] Seeds = [0];

    private sealed record Row(Config Config, ProbeMetrics Select, ProbeMetrics Hard, ProbeMetrics XsTest, ProbeMetrics DoNotAnswer, double ValidationRecall,
        double TransferThreshold, ProbeMetrics SelectTransfer, ProbeMetrics XsTestTransfer, ProbeMetrics DoNotAnswerTransfer)
    {
        /// <summary>What selection ranks by: the mean of the broad and the hard selection AUROC.</summary>
        public double Score => (Select.Auroc + Hard.Auroc) / 2;

        /// <summary>One recipe's rows, one per seed, as one row of their means.</summary>
        public static Row Mean(List<Row> seeds)
        {
            static ProbeMetrics M(IEnumerable<ProbeMetrics> all)
            {
                var m = all.ToList();
                double A(Func<ProbeMetrics, double> f) => m.Average(f);
                return new ProbeMetrics(A(x => x.Auroc), A(x => x.TprAt1PctFpr), A(x => x.TprAt5PctFpr), A(x => x.Accuracy), A(x => x.Ece), m[0].Harmful, m[0].Harmless,
                    A(x => x.Threshold), A(x => x.Recall), A(x => x.FalsePositiveRate));
            }
            return new Row(seeds[0].Config, M(seeds.Select(r => r.Select)), M(seeds.Select(r => r.Hard)), M(seeds.Select(r => r.XsTest)),
                M(seeds.Select(r => r.DoNotAnswer)), seeds.Average(r => r.ValidationRecall), seeds.Average(r => r.TransferThreshold),
                M(seeds.Select(r => r.SelectTransfer)), M(seeds.Select(r => r.XsTestTransfer)), M(seeds.Select(r => r.DoNotAnswerTransfer)));
        }
    }

    private static IEnumerable<Config> Configs()
    {
        // The earlier grids (CatQA + direct with and without HarmfulQA, balanced classes, logistic heads, last-token pooling;
        // then the milder lists once or three times, layers averaged or concatenated) settled the training pool
        // (+ HarmfulQA), the pooling over tokens (mean) and the head (MLP). This one adds the contrast pairs and varies the
        // layers again, with one logistic and one last-token row as checks. Every row is a recipe the command line trains
        // (each list once: `safetune probe train` drops repeated prompts, so the earlier "x3" weighting is not one).
        const ActivationPooling Mean = ActivationPooling.MeanTokensThenLayers;
        yield return new Config("+ HarmfulQA, mean, all layers, MLP", true, Mean, null, ProbeHeadKind.Mlp);
        yield return new Config("+ HarmfulQA + milder, mean, all layers, MLP", true, Mean, null, ProbeHeadKind.Mlp, Milder: 1);
        foreach (var (layers, concat) in new (int[]?, bool)[] { (null, false), ([2, 3], false), (null, true), ([2, 3], true), ([1, 2, 3], true) })
            yield return new Config($"+ HarmfulQA + milder + contrast, mean, {Layers(layers, concat)}, MLP",
                true, Mean, layers, ProbeHeadKind.Mlp, Concat: concat, Milder: 1, Contrast: 1);
        // The MLP's AdamW weight decay, 0.01 (the paper's) above, raised to 1 on the concatenated layers 2-3.
        yield return new Config("+ HarmfulQA + milder + contrast, mean, layers 2-3 concatenated, MLP (weight decay 1)", true, Mean, [2, 3], ProbeHeadKind.Mlp,
            Concat: true, Milder: 1, Contrast: 1, WeightDecay: 1.0);
        yield return new Config("+ HarmfulQA + milder + contrast, mean, all layers, logistic", true, Mean, null, ProbeHeadKind.Logistic, Milder: 1, Contrast: 1);
        yield return new Config("+ HarmfulQA + milder + contrast, last token, all layers, MLP", true, ActivationPooling.LastToken, null, ProbeHeadKind.Mlp,
            Milder: 1, Contrast: 1);
        // Attention-weighted pooling of layers 2-3 (a learned query over the tokens; a zero query is the concatenated
        // mean row above), with the query's L2 penalty light and heavy.
        foreach (var l2 in new[] { 1e-2, 1.0 })
            yield return new Config(string.Create(CultureInfo.InvariantCulture, $"+ HarmfulQA + milder + contrast, attention (L2 {l2:G2}), layers 2-3 concatenated, MLP"),
                true, ActivationPooling.AttentionWeighted, AttentionLayers, ProbeHeadKind.Mlp, Concat: true, Milder: 1, Contrast: 1, AttentionL2: l2);

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
        var all = new[] { p.TrainHarmful, p.TrainHarmless, p.SelectHarmful, p.SelectHarmless, p.HardHarmful, p.HardHarmless, p.MilderHarmful, p.SafeLookalikes,
                p.ContrastHarmful, p.ContrastHarmless, p.XsUnsafe, p.XsSafe, p.DoNotAnswer, p.TestHarmless }
            .SelectMany(x => x).Distinct().ToList();
        var features = new Dictionary<ActivationPooling, Dictionary<string, float[]>>();
        foreach (var pooling in Configs().Select(c => c.Pooling).Distinct().Where(q => q != ActivationPooling.AttentionWeighted))
            features[pooling] = ProbeFeatures.PerLayer(all, pooling, output.WriteLine);
        features[ActivationPooling.AttentionWeighted] = ProbeFeatures.TokenStates(all, AttentionLayers, output.WriteLine);

        var harmfulQa = new HashSet<string>(PromptFile.Read(Repo.SharedData("harmfulqa", "harmfulqa.csv")), StringComparer.Ordinal);
        var rows = Configs().Select(c => Row.Mean([.. Seeds.Select(seed => Evaluate(c, seed, p, features[c.Pooling], harmfulQa))])).ToList();
        // Selection reads the transfer sets only: the mean of the broad and the hard set's AUROC, then the hard set's TPR at
        // 1% FPR to break ties.
        var chosen = rows.OrderByDescending(r => Math.Round(r.Score, 3)).ThenByDescending(r => r.Hard.TprAt1PctFpr).First();
        var table = Table(rows, chosen, p);
        output.WriteLine(table);
        Directory.CreateDirectory(Path.Combine(Repo.Root, "artifacts"));
        File.WriteAllText(Path.Combine(Repo.Root, "artifacts", "probe-transfer.md"), table);

        // What this study established (README, seed 0): the transfer-chosen recipe is mean pooling of layers 2-3 concatenated
        // with the MLP head at weight decay 1, trained with the project's milder harms, safe lookalikes and contrast pairs; it
        // reaches AUROC 0.901 on XSTest and 0.905 on Do-Not-Answer (0.905 and 0.910 over seeds 0-2; asserted at 0.895, a
        // margin for arithmetic that differs between processors), and a threshold set on the transfer sets keeps both unseen
        // sets' recall closer to the 90% asked than one set on the training pools' validation split.
        Assert.Equal(ActivationPooling.MeanTokensThenLayers, chosen.Config.Pooling);
        Assert.True(chosen.Config.Milder > 0 && chosen.Config.Contrast > 0, chosen.Config.Name);
        Assert.True(chosen.XsTest.Auroc >= 0.895 && chosen.DoNotAnswer.Auroc >= 0.895, $"XSTest {chosen.XsTest.Auroc:F3}, Do-Not-Answer {chosen.DoNotAnswer.Auroc:F3}");
        Assert.True(Math.Abs(chosen.XsTestTransfer.Recall - 0.9) < Math.Abs(chosen.XsTest.Recall - 0.9),
            $"XSTest recall {chosen.XsTestTransfer.Recall:F3} (transfer threshold) vs {chosen.XsTest.Recall:F3} (validation threshold)");
        Assert.True(Math.Abs(chosen.DoNotAnswerTransfer.Recall - 0.9) < Math.Abs(chosen.DoNotAnswer.Recall - 0.9),
            $"Do-Not-Answer recall {chosen.DoNotAnswerTransfer.Recall:F3} (transfer threshold) vs {chosen.DoNotAnswer.Recall:F3} (validation threshold)");
    }

    private Row Evaluate(Config c, int seed, Pools p, Dictionary<string, float[]> perLayer, HashSet<string> harmfulQa)
    {
        float[]? query = null;
        float[] Feature(string prompt)
        {
            // Attention rows: perLayer holds every token's states of AttentionLayers; the query is fitted below.
            if (query is not null) return AttentionPool.Pool(perLayer[prompt], query);
            var all = perLayer[prompt];
            var chosen = c.Layers ?? [.. Enumerable.Range(0, all.Length / MiniLm.Width)];
            if (c.Concat) return [.. chosen.SelectMany(l => all.AsSpan(l * MiniLm.Width, MiniLm.Width).ToArray())];
            var f = new float[MiniLm.Width];
            foreach (var l in chosen)
                for (int j = 0; j < f.Length; j++) f[j] += all[l * MiniLm.Width + j];
            for (int j = 0; j < f.Length; j++) f[j] /= chosen.Length;
            return f;
        }
        var harmful = p.TrainHarmful.Where(q => c.HarmfulQa || !harmfulQa.Contains(q))
            .Concat(Enumerable.Repeat(p.MilderHarmful, c.Milder).SelectMany(x => x)).Concat(Enumerable.Repeat(p.ContrastHarmful, c.Contrast).SelectMany(x => x)).ToList();
        var harmless = p.TrainHarmless
            .Concat(Enumerable.Repeat(p.SafeLookalikes, c.Milder).SelectMany(x => x)).Concat(Enumerable.Repeat(p.ContrastHarmless, c.Contrast).SelectMany(x => x)).ToList();
        var y = harmful.Select(_ => true).Concat(harmless.Select(_ => false)).ToList();
        // As `safetune probe train --target-recall 0.9`: 20% held out, threshold for 90% recall on it.
        var options = new ProbeHeadOptions { Head = c.Head, TargetRecall = 0.9, Seed = seed, Mlp = new MlpTrainOptions { WeightDecay = c.WeightDecay } };
        List<float[]> x;
        if (c.Pooling == ActivationPooling.AttentionWeighted)
        {
            var (attention, pooled) = ProbeTraining.FitAttentionPooling([.. harmful.Concat(harmless).Select(q => perLayer[q])], AttentionLayers.Length * MiniLm.Width, y,
                options, new AttentionFitOptions { L2 = c.AttentionL2 });
            query = attention.Query;
            x = [.. pooled];
            output.WriteLine($"{c.Name}, seed {seed}: query from epoch {attention.BestEpoch} of {attention.EpochsRun}");
        }
        else x = [.. harmful.Concat(harmless).Select(Feature)];
        var fitted = ProbeTraining.FitHead(x, y, options);

        (double[] Scores, bool[] Labels) Score(List<string> positives, List<string> negatives) =>
            ([.. positives.Concat(negatives).Select(q => fitted.Head.PredictProbability(Feature(q)))], [.. positives.Select(_ => true), .. negatives.Select(_ => false)]);
        var sel = Score(p.SelectHarmful, p.SelectHarmless);
        var hard = Score(p.HardHarmful, p.HardHarmless);
        var both = Score([.. p.SelectHarmful, .. p.HardHarmful], [.. p.SelectHarmless, .. p.HardHarmless]);
        var xs = Score(p.XsUnsafe, p.XsSafe);
        var dna = Score(p.DoNotAnswer, p.TestHarmless);
        // Calibration on the transfer sets, broad and hard together: the threshold that reaches 90% recall on their harmful prompts.
        double transfer = BinaryMetrics.ThresholdForRecall(both.Scores, both.Labels, 0.9);
        var row = new Row(c, ProbeMetrics.Of(sel.Scores, sel.Labels, fitted.Threshold), ProbeMetrics.Of(hard.Scores, hard.Labels, fitted.Threshold),
            ProbeMetrics.Of(xs.Scores, xs.Labels, fitted.Threshold), ProbeMetrics.Of(dna.Scores, dna.Labels, fitted.Threshold), fitted.Calibration!.Recall, transfer,
            ProbeMetrics.Of(both.Scores, both.Labels, transfer), ProbeMetrics.Of(xs.Scores, xs.Labels, transfer), ProbeMetrics.Of(dna.Scores, dna.Labels, transfer));
        output.WriteLine($"{c.Name}, seed {seed}: selection {row.Select.Auroc:F3} / hard {row.Hard.Auroc:F3}, XSTest {row.XsTest.Auroc:F3}, Do-Not-Answer {row.DoNotAnswer.Auroc:F3}");
        return row;
    }

    private static string Table(List<Row> rows, Row chosen, Pools p)
    {
        var inv = CultureInfo.InvariantCulture;
        static string F(double v) => v.ToString("F3", CultureInfo.InvariantCulture);
        var sb = new StringBuilder();
        sb.AppendLine("| recipe (training pool, pooling, layers, head) | broad selection AUROC | hard selection AUROC | hard selection TPR@1%FPR | XSTest AUROC | XSTest TPR@1%FPR | Do-Not-Answer AUROC | Do-Not-Answer TPR@1%FPR |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in rows)
            sb.AppendLine(string.Create(inv,
                $"| {(r == chosen ? "**" + r.Config.Name + "** (chosen)" : r.Config.Name)} | {F(r.Select.Auroc)} | {F(r.Hard.Auroc)} | {F(r.Hard.TprAt1PctFpr)} | {F(r.XsTest.Auroc)} | {F(r.XsTest.TprAt1PctFpr)} | {F(r.DoNotAnswer.Auroc)} | {F(r.DoNotAnswer.TprAt1PctFpr)} |"));
        sb.AppendLine();
        sb.AppendLine("Calibration of the chosen recipe, a threshold for 90% recall:");
        sb.AppendLine();
        sb.AppendLine("| threshold set on | threshold | recall where set | XSTest recall | XSTest FPR | Do-Not-Answer recall | Do-Not-Answer FPR |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        sb.AppendLine(string.Create(inv,
            $"| the training pools' 20% validation split | {F(chosen.XsTest.Threshold)} | {F(chosen.ValidationRecall)} | {F(chosen.XsTest.Recall)} | {F(chosen.XsTest.FalsePositiveRate)} | {F(chosen.DoNotAnswer.Recall)} | {F(chosen.DoNotAnswer.FalsePositiveRate)} |"));
        sb.AppendLine(string.Create(inv,
            $"| the transfer (selection) sets, broad and hard | {F(chosen.TransferThreshold)} | {F(chosen.SelectTransfer.Recall)} | {F(chosen.XsTestTransfer.Recall)} | {F(chosen.XsTestTransfer.FalsePositiveRate)} | {F(chosen.DoNotAnswerTransfer.Recall)} | {F(chosen.DoNotAnswerTransfer.FalsePositiveRate)} |"));
        sb.AppendLine();
        sb.AppendLine(string.Create(inv,
            $"Sizes after deduplication: training {p.TrainHarmful.Count} harmful (with HarmfulQA) / {p.TrainHarmless.Count} harmless, milder {p.MilderHarmful.Count} / lookalikes {p.SafeLookalikes.Count}, " +
            $"contrast {p.ContrastHarmful.Count} harmful / {p.ContrastHarmless.Count} harmless; broad selection {p.SelectHarmful.Count} harmful / {p.SelectHarmless.Count} harmless, " +
            $"hard selection {p.HardHarmful.Count} harmful / {p.HardHarmless.Count} harmless; " +
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
        var milderGroups = PromptFile.ReadColumn(DataFile("milder_harmful.csv"), "group");
        var lookalikes = PromptFile.Read(DataFile("safe_lookalikes.csv"));
        var lookalikeGroups = PromptFile.ReadColumn(DataFile("safe_lookalikes.csv"), "group");
        var contrast = PromptFile.Read(DataFile("contrast_pairs.csv"));
        var contrastGroups = PromptFile.ReadColumn(DataFile("contrast_pairs.csv"), "group");
        var contrastLabels = PromptFile.ReadColumn(DataFile("contrast_pairs.csv"), "label");
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
        // The hard selection set, by template group with a generator each: 30% of the milder-harm and of the safe-lookalike
        // groups and half of the contrast pairs; the rest of each list trains.
        static HashSet<string> Held(IReadOnlyList<string> groupOf, double share, int seed)
        {
            var rng = new Random(seed);
            var distinct = groupOf.Distinct().OrderBy(_ => rng.Next()).ToList();
            return distinct.Take((int)Math.Round(distinct.Count * share)).ToHashSet();
        }
        var milderHeld = Held(milderGroups, 0.3, 11);
        var lookalikeHeld = Held(lookalikeGroups, 0.3, 13);
        var contrastHeld = Held(contrastGroups, 0.5, 17);
        List<string> Pick(IReadOnlyList<string> prompts, IReadOnlyList<string> groupOf, HashSet<string> held, bool select, Func<int, bool>? keep = null) =>
            [.. prompts.Where((_, i) => held.Contains(groupOf[i]) == select && (keep is null || keep(i)))];

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
        // The project's newer lists, taken after the test sets, so those stay exactly as they were without them: the hard
        // selection set first, then the training additions.
        var hardHarmful = Take(Pick(milder, milderGroups, milderHeld, true).Concat(Pick(contrast, contrastGroups, contrastHeld, true, i => contrastLabels[i] == "harmful")));
        var hardHarmless = Take(Pick(lookalikes, lookalikeGroups, lookalikeHeld, true).Concat(Pick(contrast, contrastGroups, contrastHeld, true, i => contrastLabels[i] == "benign")));
        var milderK = Take(Pick(milder, milderGroups, milderHeld, false));
        var lookalikesK = Take(Pick(lookalikes, lookalikeGroups, lookalikeHeld, false));
        var contrastHarmful = Take(Pick(contrast, contrastGroups, contrastHeld, false, i => contrastLabels[i] == "harmful"));
        var contrastHarmless = Take(Pick(contrast, contrastGroups, contrastHeld, false, i => contrastLabels[i] == "benign"));
        return new Pools(trainHarmful, trainHarmless, selectHarmful, selectHarmless, hardHarmful, hardHarmless, milderK, lookalikesK, contrastHarmful, contrastHarmless,
            xsUnsafe, xsSafe, dnaK, testHarmless);
    }

}
