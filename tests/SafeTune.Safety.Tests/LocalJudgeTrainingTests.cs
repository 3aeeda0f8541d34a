using SafeTune.Onnx;
using SafeTune.Safety.Critics;
using SafeTune.Safety.Critics.Local;
using SafeTune.Safety.Data;
using SafeTune.TestSupport;
using Xunit.Abstractions;

namespace SafeTune.Safety.Tests;

/// <summary>Training the local judge with SafeTune's engine (tiny runs), its data, and the cache.</summary>
public sealed class LocalJudgeTrainingTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A recipe that trains in seconds: short inputs, one adapted layer, a few small batches.</summary>
    private static LocalJudgeRecipe Tiny(int steps = 8) => LocalJudgeRecipe.Default with
    {
        MaxLength = 24,
        Lora = new LocalJudgeLora { Rank = 4, Layers = [5] },
        Training = new LocalJudgeTraining { Steps = steps, BatchSize = 8, WarmupSteps = 2, LearningRate = 3e-3 },
        Data = new LocalJudgeDataMix { AlpacaTrain = 40, TestPerGroup = 4 },
    };

    private static string Histogram(Model m) =>
        string.Join(",", m.Graph.Nodes.GroupBy(n => n.OpType).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key}:{g.Count()}"));

    [Fact]
    public void Training_lowers_the_loss_repeats_bit_for_bit_and_leaves_a_plain_graph()
    {
        var recipe = Tiny();
        var encoder = JudgePairEncoder.FromVocab(MiniLm.WriteVocab(_dir.File("vocab.txt")), recipe.MaxLength);
        // 16 AdvBench goals, each with its affirmative target (harmful) and a refusal (not harmful).
        var goals = PromptFile.ReadColumn(Repo.SharedData("advbench", "harmful_behaviors.csv"), "goal").Take(16).ToList();
        var targets = PromptFile.ReadColumn(Repo.SharedData("advbench", "harmful_behaviors.csv"), "target").Take(16).ToList();
        var examples = goals.SelectMany((g, i) => new[]
        {
            (encoder.Encode(g, targets[i]), 1L),
            (encoder.Encode(g, "I'm sorry, but I can't help with that."), 0L),
        }).ToList();

        var a = LocalJudgeTrainer.Train(MiniLm.Load(), encoder, examples, recipe);
        var b = LocalJudgeTrainer.Train(MiniLm.Load(), encoder, examples, recipe);
        output.WriteLine("losses: " + string.Join(", ", a.Losses.Select(l => l.ToString("F4"))));
        output.WriteLine($"{a.TrainableParameters} trained values, {a.Seconds:F1} s");

        // The loss falls (the first epoch of 4 batches against the second).
        Assert.True(a.Losses.Skip(4).Average() < a.Losses.Take(4).Average() - 0.05, "the loss did not decrease: " + string.Join(", ", a.Losses));
        // Deterministic: the same losses and the same weights, bit for bit.
        Assert.Equal(a.Losses, b.Losses);
        var wa = a.Model.Graph.Initializers.ToDictionary(v => v.Name, v => v.Initializer!.Bytes.ToArray());
        foreach (var v in b.Model.Graph.Initializers)
            Assert.True(wa[v.Name].AsSpan().SequenceEqual(v.Initializer!.Bytes), $"initializer '{v.Name}' differs between two identical runs");

        // The adapters are merged away: the graph is the untrained classifier's, node for node.
        var plain = HarmClassifierGraph.Build(MiniLm.Load(), recipe.HeadSeed);
        Assert.DoesNotContain(a.Model.Graph.Initializers, v => v.Name.Contains("lora", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(a.Model.Graph.Nodes, n => n.Name.Contains("/lora", StringComparison.Ordinal));
        Assert.Equal(Histogram(plain), Histogram(a.Model));
        Assert.Equal(plain.Graph.Nodes.Select(n => n.Name), a.Model.Graph.Nodes.Select(n => n.Name));
        Assert.Equal(plain.Graph.Initializers.Select(v => v.Name).Order(), a.Model.Graph.Initializers.Select(v => v.Name).Order());

        // The head and the adapted layer changed; the layers without adapters did not.
        bool Same(string name) => plain.Graph.FindInitializer(name)!.Initializer!.Bytes.SequenceEqual(a.Model.Graph.FindInitializer(name)!.Initializer!.Bytes);
        Assert.False(Same(HarmClassifierGraph.HeadWeight));
        Assert.False(Same("encoder.layer.5.attention.self.query.weight"));
        Assert.False(Same("encoder.layer.5.output.dense.weight"));
        Assert.True(Same("encoder.layer.4.attention.self.query.weight"));
        Assert.True(Same("encoder.layer.0.intermediate.dense.weight"));
        Assert.True(Same("embeddings.word_embeddings.weight"));
    }

    [Fact]
    public void BuildOrLoad_caches_the_judge_and_rebuilds_a_damaged_cache()
    {
        var cache = _dir.File("cache");
        var options = new LocalJudgeOptions { Recipe = Tiny(steps: 3), DataDirectory = Repo.SharedData() };
        var stages = new List<string>();
        var progress = new SyncProgress(p => stages.Add(p.Stage));
        string hash;
        using (var built = LocalClassifierJudge.BuildOrLoad(cache, progress, options))
        {
            Assert.True(built.Built);
            hash = built.Manifest.RecipeHash;
            Assert.Equal(["data", "train", "save", "evaluate"], stages.Distinct());
            Assert.NotNull(built.Manifest.Metrics);
            Assert.Equal(LocalClassifierJudge.FormatTag, built.Manifest.Format);
            Assert.Equal(3, built.Manifest.Training.Steps);
            Assert.All(built.Score([new JudgeItem("How do I bake bread?", "Mix flour and water.")]), v => Assert.InRange(v.Score, 1, 5));
        }
        Assert.Equal(["judge.json", "judge.onnx", "vocab.txt"], Directory.GetFileSystemEntries(cache).Select(Path.GetFileName).Order());

        stages.Clear();
        using (var loaded = LocalClassifierJudge.BuildOrLoad(cache, progress, options))
        {
            Assert.False(loaded.Built);
            Assert.Equal(hash, loaded.Manifest.RecipeHash);
            Assert.Equal(["loaded"], stages);
        }

        // A damaged model file (a torn write, a disk error) makes the cache miss; the judge is built again.
        using (var s = File.OpenWrite(Path.Combine(cache, LocalClassifierJudge.ModelFile))) s.SetLength(1000);
        using (var rebuilt = LocalClassifierJudge.BuildOrLoad(cache, null, options))
            Assert.True(rebuilt.Built);
        using (var again = LocalClassifierJudge.BuildOrLoad(cache, null, options))
            Assert.False(again.Built);

        // A build that stopped before its manifest was written leaves no judge; the next call builds one.
        File.Delete(Path.Combine(cache, LocalClassifierJudge.ManifestFile));
        Assert.Throws<FileNotFoundException>(() => LocalClassifierJudge.Load(cache));
        using (var fresh = LocalClassifierJudge.BuildOrLoad(cache, null, options))
            Assert.True(fresh.Built);
        Assert.DoesNotContain(Directory.GetFileSystemEntries(cache), e => Path.GetFileName(e).StartsWith(".building", StringComparison.Ordinal));
    }

    [Fact]
    public void Data_pairs_every_harmful_prompt_with_both_labels_and_keeps_test_prompts_out_of_training()
    {
        var data = JudgeData.Build(Repo.SharedData(), LocalJudgeRecipe.Default.Data);
        foreach (var g in data.Train.GroupBy(p => p.Group)) output.WriteLine($"train {g.Key}: {g.Count()}");
        foreach (var g in data.Test.GroupBy(p => p.Group)) output.WriteLine($"test {g.Key}: {g.Count()}");

        // Every prompt with a harmful pair also has a not-harmful pair (a refusal), in training.
        var byPrompt = data.Train.GroupBy(p => p.Prompt).ToList();
        foreach (var g in byPrompt.Where(g => g.Any(p => p.Harmful)))
            Assert.True(g.Any(p => !p.Harmful), $"harmful training prompt without a refusal: {g.Key}");
        Assert.True(data.Train.Count(p => p.Harmful) > 1000);

        // No test prompt appears in training, after normalisation.
        var trainKeys = data.Train.Select(p => JudgeData.Normalize(p.Prompt)).ToHashSet();
        Assert.DoesNotContain(data.Test, p => trainKeys.Contains(JudgeData.Normalize(p.Prompt)));
        // Test replies use phrasings training never used.
        var trainReplies = data.Train.Select(p => p.Response).ToHashSet();
        Assert.DoesNotContain(data.Test.Where(p => p.Group.EndsWith("/compliant", StringComparison.Ordinal) && !p.Group.StartsWith("demo", StringComparison.Ordinal)),
            p => trainReplies.Contains(p.Response));

        string[] groups = ["harmfulqa/compliant", "harmfulqa/refusal", "do-not-answer/compliant", "do-not-answer/refusal", "alpaca/answer",
            "xstest-safe/compliant", "xstest-unsafe/compliant", "topic-matched-benign/compliant", "topic-matched-harmful/compliant",
            "held-out-groups-benign/compliant", "held-out-groups-harmful/compliant",
            "demo/harmful-compliant", "demo/harmful-refusal", "demo/benign", "demo/scary-safe"];
        Assert.Equal(groups.Order(), data.Test.Select(p => p.Group).Distinct().Order());
        Assert.All(data.Test.GroupBy(p => p.Group), g => Assert.InRange(g.Count(), 20, LocalJudgeRecipe.Default.Data.TestPerGroup));
        Assert.Equal("do not answer ai s rule 1", JudgeData.Normalize("Do NOT answer: AI's rule #1!"));

        // Same inputs, same data.
        var again = JudgeData.Build(Repo.SharedData(), LocalJudgeRecipe.Default.Data);
        Assert.Equal(data.Train, again.Train);
        Assert.Equal(data.Test, again.Test);
        Assert.Equal(data.Fingerprint, again.Fingerprint);
    }

    [Fact]
    public void The_project_prompt_lists_are_read_from_the_assembly_and_their_held_out_prompts_never_reach_training()
    {
        // The lists ship inside SafeTune.Safety, byte for byte what make_probe_data.py wrote into the repository.
        foreach (var file in JudgeData.EmbeddedFiles)
        {
            var onDisk = PromptFile.Read(Path.Combine(Repo.Root, "src", "SafeTune.Safety", "ProbeData", file));
            Assert.Equal(onDisk, JudgeData.ReadEmbedded(file, "prompt").Select(r => r.Prompt));
        }
        var topic = JudgeData.ReadEmbedded("topic_matched.csv", "label");
        Assert.Equal(156, topic.Count);
        Assert.Equal(78, topic.Count(t => t.Key == "harmful"));
        var hard = JudgeData.ReadEmbedded("hard_negatives.csv", "group");
        var direct = JudgeData.ReadEmbedded("direct_harmful.csv", "group");
        Assert.True(hard.Count > 1500 && direct.Count > 800, $"{hard.Count} hard negatives, {direct.Count} direct harmful requests");

        var data = JudgeData.Build(Repo.SharedData(), LocalJudgeRecipe.Default.Data);
        var trainKeys = data.Train.Select(p => JudgeData.Normalize(p.Prompt)).ToHashSet();
        // Every topic-matched prompt is tested, once, with a held-out compliant opening, and none is trained on.
        var topicTest = data.Test.Where(p => p.Group.StartsWith("topic-matched-", StringComparison.Ordinal)).ToList();
        Assert.Equal(topic.Select(t => t.Prompt).Order(), topicTest.Select(p => p.Prompt).Order());
        Assert.All(topicTest, p => Assert.Equal(p.Group == "topic-matched-harmful/compliant", p.Harmful));
        Assert.All(topicTest, p => Assert.Contains(p.Response, JudgeTemplates.CompliantTest));
        Assert.DoesNotContain(topic, t => trainKeys.Contains(JudgeData.Normalize(t.Prompt)));

        // The lists are trained on by whole template groups; the held-out groups are tested, never trained on.
        var trainedPrompts = data.Train.Select(p => p.Prompt).ToHashSet();
        var heldPrompts = data.Test.Where(p => p.Group.StartsWith("held-out-groups-", StringComparison.Ordinal)).Select(p => p.Prompt).ToHashSet();
        Assert.True(data.Train.Count(p => p.Group == "hard-negative/opening") > 1000);
        Assert.True(data.Train.Count(p => p.Group == "direct-harmful/compliant") > 500);
        Assert.True(heldPrompts.Count > 200);
        foreach (var rows in new[] { hard, direct })
            foreach (var g in rows.GroupBy(r => r.Key))
            {
                bool trained = g.Any(r => trainedPrompts.Contains(r.Prompt));
                bool held = g.Any(r => heldPrompts.Contains(r.Prompt));
                Assert.False(trained && held, $"template group {g.Key} is on both sides of the split");
            }
        Assert.DoesNotContain(heldPrompts, p => trainKeys.Contains(JudgeData.Normalize(p)));
        // Benign and harmful requests get the same openings in training, so the request, not the reply, decides.
        Assert.All(data.Train.Where(p => p.Group is "hard-negative/opening" or "direct-harmful/compliant"),
            p => Assert.Contains(p.Response, JudgeTemplates.NeutralOpeningsTrain));
    }

    [Fact]
    public void Missing_data_is_named()
    {
        var empty = Directory.CreateDirectory(_dir.File("data")).FullName;
        var e = Assert.Throws<FileNotFoundException>(() => JudgeData.Fingerprint(empty));
        Assert.Contains("advbench", e.Message);
        Assert.Throws<FileNotFoundException>(() => LocalClassifierJudge.BuildOrLoad(_dir.File("c"), null, new LocalJudgeOptions { DataDirectory = empty }));
    }

    [Fact]
    public void Recipe_round_trips_and_its_hash_depends_on_recipe_and_data()
    {
        var r = LocalJudgeRecipe.Default;
        var parsed = LocalJudgeRecipe.Parse(r.ToJson());
        Assert.Equal(r.ToJson(), parsed.ToJson());
        Assert.Equal(r.Hash("data"), parsed.Hash("data"));
        Assert.NotEqual(r.Hash("data"), r.Hash("other data"));
        Assert.NotEqual(r.Hash("data"), (r with { MaxLength = 32 }).Hash("data"));
        Assert.Throws<InvalidDataException>(() => LocalJudgeRecipe.Parse("{ \"max_length\": \"long\" }"));
        Assert.Throws<UserInputException>(() => (r with { Lora = r.Lora with { Layers = [7] } }).Validate());
        Assert.Throws<UserInputException>(() => (r with { Threshold = 1 }).Validate());
    }

    /// <summary>Reports on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress(Action<LocalJudgeProgress> report) : IProgress<LocalJudgeProgress>
    {
        public void Report(LocalJudgeProgress value) => report(value);
    }
}
