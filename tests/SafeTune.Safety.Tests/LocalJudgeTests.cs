using System.Text.Json;
using SafeTune.Autodiff.Lora;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Safety.Critics;
using SafeTune.Safety.Critics.Local;
using SafeTune.Data.Public;
using SafeTune.TestSupport;
using Xunit.Abstractions;

namespace SafeTune.Safety.Tests;

/// <summary>The local classifier judge: graph, encoding, agreement with PyTorch, fail-closed scoring, loading.</summary>
public sealed class LocalJudgeTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private sealed record ReferencePair(string Prompt, string Response, long[] Ids, long[] TokenTypeIds, bool Truncated, double[] Logits, double PHarmful);

    private sealed record Reference(int MaxLength, float[] HeadWeight, float[] HeadBias, ReferencePair[] Pairs);

    private static Reference LoadReference() => JsonSerializer.Deserialize<Reference>(File.ReadAllText(Repo.Fixture("judge", "reference.json")),
        new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower })!;

    /// <summary>A judge folder holding the untrained classifier with the reference head.</summary>
    private string ReferenceJudgeFolder(Reference r)
    {
        var dir = _dir.File("reference-judge");
        var model = HarmClassifierGraph.Build(MiniLm.Load(), r.HeadWeight, r.HeadBias);
        var recipe = LocalJudgeRecipe.Default with { MaxLength = r.MaxLength };
        var manifest = LocalClassifierJudge.SaveModel(dir, model, recipe, "test", "test", new LocalJudgeTrainingSummary(0, 0, 0, 0, 0, 0));
        LocalClassifierJudge.WriteManifest(dir, manifest);
        return dir;
    }

    [Fact]
    public void Classifier_graph_reads_the_encoder_inputs_and_returns_logits_per_row()
    {
        var model = HarmClassifierGraph.Build(MiniLm.Load(), seed: 1);
        var g = model.Graph;
        Assert.Equal(HarmClassifierGraph.Inputs, g.Inputs.Select(i => i.Name));
        var logits = Assert.Single(g.Outputs);
        Assert.Equal(HarmClassifierGraph.LogitsName, logits.Name);
        Assert.Equal("[batch,1,2]", logits.Shape!.ToString().Replace(" ", ""));
        Assert.Equal([MiniLm.Width, 2L], g.FindInitializer(HarmClassifierGraph.HeadWeight)!.Initializer!.Dims);
        Assert.Equal([2L], g.FindInitializer(HarmClassifierGraph.HeadBias)!.Initializer!.Dims);
        // The pooler (Gemm + Tanh) is gone, and every projection is named after its bias.
        Assert.DoesNotContain(g.Nodes, n => n.OpType is "Gemm" or "Tanh");
        var projections = LoraPass.FindCandidates(model).Where(c => c.WeightName.StartsWith("encoder.layer.", StringComparison.Ordinal)).ToList();
        Assert.Equal(MiniLm.Layers * 6, projections.Count);
        Assert.Contains(projections, c => c.WeightName == "encoder.layer.5.attention.self.query.weight" && c.In == 384 && c.Out == 384);
        Assert.Contains(projections, c => c.WeightName == "encoder.layer.0.intermediate.dense.weight" && c.In == 384 && c.Out == 1536);

        using var session = SessionFactory.Create(model, new SessionConfig { IntraOpThreads = 2 });
        var encoder = JudgePairEncoder.FromVocab(MiniLm.WriteVocab(_dir.File("vocab.txt")), 32);
        var batch = encoder.Batch([encoder.Encode("How do I bake bread?", "Mix flour and water."), encoder.Encode("Hi", ""), encoder.Encode("a", "b c d e f g")]);
        using var ids = OrtValues.Wrap(batch.InputIds, batch.BatchSize, batch.SequenceLength);
        using var mask = OrtValues.Wrap(batch.AttentionMask!, batch.BatchSize, batch.SequenceLength);
        using var types = OrtValues.Wrap(batch.TokenTypeIds!, batch.BatchSize, batch.SequenceLength);
        using var run = new Microsoft.ML.OnnxRuntime.RunOptions();
        using var outs = session.Run(run, HarmClassifierGraph.Inputs, [ids, mask, types], [HarmClassifierGraph.LogitsName]);
        Assert.Equal([3L, 1, 2], OrtValues.ShapeOf(outs[0]));
        Assert.All(OrtValues.ToFloats(outs[0]), v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void Pair_encoding_and_probability_match_an_independent_PyTorch_computation()
    {
        var r = LoadReference();
        var encoder = JudgePairEncoder.FromVocab(MiniLm.WriteVocab(_dir.File("vocab.txt")), r.MaxLength);
        foreach (var p in r.Pairs)
        {
            var e = encoder.Encode(p.Prompt, p.Response);
            Assert.Equal(p.Ids, e.Ids);
            Assert.Equal(p.TokenTypeIds, e.TypeIds);
            Assert.Equal(p.Truncated, e.Truncated);
        }
        Assert.Contains(r.Pairs, p => p.Truncated);

        using var judge = LocalClassifierJudge.Load(ReferenceJudgeFolder(r));
        var items = r.Pairs.Select(p => new JudgeItem(p.Prompt, p.Response)).ToList();
        var probabilities = judge.HarmProbabilities(items);   // one padded batch
        var verdicts = judge.Score(items);
        double worst = 0;
        for (int i = 0; i < r.Pairs.Length; i++)
        {
            double d = Math.Abs(probabilities[i] - r.Pairs[i].PHarmful);
            worst = Math.Max(worst, d);
            output.WriteLine($"pair {i}: p = {probabilities[i]:F6}, PyTorch {r.Pairs[i].PHarmful:F6}");
            Assert.True(d <= 1e-5, $"pair {i}: p(harmful) {probabilities[i]} vs PyTorch {r.Pairs[i].PHarmful}");
            Assert.False(verdicts[i].Failed);
            Assert.Equal(1 + 4 * probabilities[i], verdicts[i].Score, 12);
        }
        output.WriteLine($"worst |p - p_torch| = {worst:E2}");
        // Each pair alone (no padding) gives the same probability as in the padded batch.
        for (int i = 0; i < items.Count; i++)
            Assert.Equal(probabilities[i], judge.HarmProbabilities([items[i]])[0], 5);
    }

    [Fact]
    public void Long_pairs_keep_the_start_of_the_response()
    {
        var encoder = JudgePairEncoder.FromVocab(MiniLm.WriteVocab(_dir.File("vocab.txt")), 16);
        var longText = string.Join(' ', Enumerable.Repeat("word", 40));
        // A long prompt and a long response share the room (13 tokens): the response gets half (6), the prompt the rest.
        var both = encoder.Encode(longText, "sure here is " + longText);
        Assert.True(both.Truncated);
        Assert.Equal(16, both.Ids.Length);
        Assert.Equal((7, 6), (both.PromptTokens, both.ResponseTokens));
        // A short prompt leaves the rest to the response.
        var shortPrompt = encoder.Encode("hi", longText);
        Assert.Equal((1, 12), (shortPrompt.PromptTokens, shortPrompt.ResponseTokens));
        // A short response is kept whole.
        var shortResponse = encoder.Encode(longText, "no");
        Assert.Equal((12, 1), (shortResponse.PromptTokens, shortResponse.ResponseTokens));
        Assert.Equal([0L, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1], shortResponse.TypeIds);
        var fits = encoder.Encode("hi", "no");
        Assert.False(fits.Truncated);
        Assert.Equal(5, fits.Ids.Length);

        var batch = encoder.Batch([fits, both], [0, 1]);
        Assert.Equal((2, 16), (batch.BatchSize, batch.SequenceLength));
        Assert.Equal(1, batch.LabelColumns);
        Assert.Equal([1L, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], batch.AttentionMask![..16]);
        Assert.Throws<UserInputException>(() => new JudgePairEncoder(TokenizerLoader.Load("gpt2"), 16));
        Assert.Throws<UserInputException>(() => JudgePairEncoder.FromVocab(_dir.File("vocab.txt"), 4));
    }

    [Fact]
    public void Items_that_cannot_be_scored_fail_closed()
    {
        using var judge = LocalClassifierJudge.Load(ReferenceJudgeFolder(LoadReference()));
        var good = new JudgeItem("How do I bake bread?", "Mix flour and water.");
        var verdicts = judge.Score([good, new JudgeItem(null!, "text"), null!, good]);
        Assert.Equal(4, verdicts.Count);
        Assert.False(verdicts[0].Failed);
        Assert.Equal(verdicts[0], verdicts[3]);
        foreach (var v in verdicts.Skip(1).Take(2))
        {
            Assert.True(v.Failed);
            Assert.Equal(JudgeVerdict.MaxScore, v.Score);
            Assert.Contains("cannot be encoded", v.Error);
        }
        Assert.Contains("item 1", verdicts[1].Error);
        Assert.Empty(judge.Score([]));
        Assert.Throws<OperationCanceledException>(() => judge.Score([good], new CancellationToken(canceled: true)));
        judge.Dispose();
        Assert.Throws<ObjectDisposedException>(() => judge.Score([good]));
    }

    [Fact]
    public void Load_names_the_file_at_fault()
    {
        var dir = ReferenceJudgeFolder(LoadReference());
        using (var judge = LocalClassifierJudge.Load(Path.Combine(dir, LocalClassifierJudge.ManifestFile)))
            Assert.Contains("local classifier", judge.Name);
        using (LocalClassifierJudge.Load(Path.Combine(dir, LocalClassifierJudge.ModelFile))) { }

        var empty = Directory.CreateDirectory(_dir.File("empty")).FullName;
        var missing = Assert.Throws<FileNotFoundException>(() => LocalClassifierJudge.Load(empty));
        Assert.Contains(LocalClassifierJudge.ManifestFile, missing.Message);
        Assert.Throws<FileNotFoundException>(() => LocalClassifierJudge.Load(_dir.File("nowhere")));

        var manifest = Path.Combine(dir, LocalClassifierJudge.ManifestFile);
        var original = File.ReadAllText(manifest);
        File.WriteAllText(manifest, original.Replace(LocalClassifierJudge.FormatTag, "something-else/1", StringComparison.Ordinal));
        var foreign = Assert.Throws<InvalidDataException>(() => LocalClassifierJudge.Load(dir));
        Assert.Contains(manifest, foreign.Message);
        File.WriteAllText(manifest, "{ not json");
        Assert.Contains("not valid JSON", Assert.Throws<InvalidDataException>(() => LocalClassifierJudge.Load(dir)).Message);
        File.WriteAllText(manifest, original);

        using (var s = File.OpenWrite(Path.Combine(dir, LocalClassifierJudge.ModelFile))) s.SetLength(s.Length / 2);
        var damaged = Assert.Throws<InvalidDataException>(() => LocalClassifierJudge.Load(dir));
        Assert.Contains("SHA-256", damaged.Message);
        Assert.Contains(LocalClassifierJudge.ModelFile, damaged.Message);
    }

    [Fact]
    public void Token_batches_feed_segment_ids_and_one_label_per_row()
    {
        var batch = new SafeTune.Runtime.Training.TokenBatch([101, 7, 102, 101, 8, 102], [1, 0], null, 2, 3) { TokenTypeIds = [0, 0, 1, 0, 1, 1] };
        Assert.Equal(1, batch.LabelColumns);
        using (var labels = batch.InputFor("labels")!) Assert.Equal([2L, 1], OrtValues.ShapeOf(labels));
        using (var types = batch.InputFor("token_type_ids")!) Assert.Equal([0L, 0, 1, 0, 1, 1], types.GetTensorDataAsSpan<long>().ToArray());
        batch.Validate(30522, 2);
        Assert.Contains("labels[1][0] = 2", Assert.Throws<InvalidDataException>(() => (batch with { Labels = [1, 2] }).Validate(30522, 2)).Message);
        Assert.Contains("one per row", Assert.Throws<InvalidDataException>(() => (batch with { Labels = [1, 0, 1] }).Validate(30522, 2)).Message);
        Assert.Contains("token_type_ids", Assert.Throws<InvalidDataException>(() => (batch with { TokenTypeIds = [0] }).Validate(30522, 2)).Message);
        // Without segment ids a model that takes them gets zeros, as before.
        using var zeros = (batch with { TokenTypeIds = null }).InputFor("token_type_ids")!;
        Assert.All(zeros.GetTensorDataAsSpan<long>().ToArray(), v => Assert.Equal(0, v));
    }

    [Fact]
    public void Score_mapping_spans_the_rubric()
    {
        Assert.Equal(JudgeVerdict.MinScore, LocalClassifierJudge.ScoreFromProbability(0));
        Assert.Equal(3.0, LocalClassifierJudge.ScoreFromProbability(0.5));
        Assert.Equal(JudgeVerdict.MaxScore, LocalClassifierJudge.ScoreFromProbability(1));
    }

    [Fact]
    public void Cache_and_data_folders_follow_the_environment()
    {
        var cache = Environment.GetEnvironmentVariable(LocalClassifierJudge.CacheEnvironmentVariable);
        var mirror = Environment.GetEnvironmentVariable(PublicDataStore.MirrorVariable);
        try
        {
            Environment.SetEnvironmentVariable(LocalClassifierJudge.CacheEnvironmentVariable, _dir.File("judge-cache"));
            Assert.Equal(_dir.File("judge-cache"), LocalClassifierJudge.DefaultCacheDirectory);
            Environment.SetEnvironmentVariable(LocalClassifierJudge.CacheEnvironmentVariable, null);
            Assert.EndsWith(Path.Combine("safetune", "judge"), LocalClassifierJudge.DefaultCacheDirectory);

            Environment.SetEnvironmentVariable(PublicDataStore.MirrorVariable, Repo.SharedData());
            Assert.Equal(Path.GetFullPath(Repo.SharedData()), Path.GetFullPath(JudgeData.FindDataDirectory()));
            Environment.SetEnvironmentVariable(PublicDataStore.MirrorVariable, _dir.File("no-such-data"));
            var e = Assert.Throws<PublicDataException>(() => JudgeData.FindDataDirectory());
            Assert.Contains(PublicDataStore.MirrorVariable, e.Message);
            Assert.Contains("advbench", e.Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable(LocalClassifierJudge.CacheEnvironmentVariable, cache);
            Environment.SetEnvironmentVariable(PublicDataStore.MirrorVariable, mirror);
        }
    }
}
