using Microsoft.ML.OnnxRuntime;
using SafeTune.Models.Decoders;
using SafeTune.Models.Generation;
using SafeTune.Models.HuggingFace;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.TestSupport;

namespace SafeTune.Models.Tests;

/// <summary>The key/value-cache decoder graphs and <see cref="Generator"/>.</summary>
public sealed class GenerationTests
{
    private static readonly int[][] Prompts = [[5, 17, 42, 8, 3, 61, 29], [11, 70, 2, 33]];

    /// <summary>The plain and the cache graph of a fixture checkpoint, with the same weights.</summary>
    private static (Model plain, Model cached) FixtureModels(string name)
    {
        var c = HfCheckpoint.Load(Repo.Fixture("hf", name));
        var plain = HfExporter.Export(c);
        if (c.ModelType == "gpt2")
        {
            var config = new Gpt2Config
            {
                VocabSize = c.Int("vocab_size"), HiddenSize = c.Int("n_embd"), Layers = c.Int("n_layer"), Heads = c.Int("n_head"),
                Positions = c.Int("n_positions"), LayerNormEpsilon = (float)c.Number("layer_norm_epsilon", 1e-5),
                Activation = c.String("activation_function", "gelu_new"),
            };
            string prefix = c.Tensors.ContainsKey("transformer.wte.weight") ? "transformer." : "";
            return (plain, Gpt2Graph.Build(config, c.Tensors, prefix, options: DecoderGraphOptions.WithKvCache));
        }
        int heads = c.Int("num_attention_heads");
        var llama = new LlamaConfig
        {
            VocabSize = c.Int("vocab_size"), HiddenSize = c.Int("hidden_size"), Layers = c.Int("num_hidden_layers"), Heads = heads,
            KeyValueHeads = c.Int("num_key_value_heads", heads), IntermediateSize = c.Int("intermediate_size"),
            RopeTheta = c.Number("rope_theta", 10000.0), RmsNormEpsilon = (float)c.Number("rms_norm_eps", 1e-6),
            TieWordEmbeddings = c.Bool("tie_word_embeddings", false), AttentionBias = c.ModelType == "qwen2" || c.Bool("attention_bias", false),
        };
        return (plain, LlamaGraph.Build(llama, c.Tensors, options: DecoderGraphOptions.WithKvCache));
    }

    private static (Model plain, Model cached) Models(string name) => name == "tiny"
        ? (LlamaGraph.Build(LlamaConfig.Tiny, seed: 0), LlamaGraph.Build(LlamaConfig.Tiny, seed: 0, options: DecoderGraphOptions.WithKvCache))
        : FixtureModels(name);

    private static float[] PlainLogits(InferenceSession s, int[] tokens)
    {
        using var ids = OrtValues.Wrap(tokens.Select(t => (long)t).ToArray(), 1, tokens.Length);
        using var run = new RunOptions();
        using var outputs = s.Run(run, ["input_ids"], [ids], ["logits"]);
        return OrtValues.ToFloats(outputs[0]);
    }

    /// <summary>Runs a cache model on one row: returns the logits and the present keys/values (caller disposes).</summary>
    private static (float[] logits, OrtValue[] present) CachedStep(InferenceSession s, int[] tokens, int pastLength, OrtValue[] past)
    {
        int layers = past.Length / 2;
        using var ids = OrtValues.Wrap(tokens.Select(t => (long)t).ToArray(), 1, tokens.Length);
        using var mask = OrtValues.Wrap(Enumerable.Repeat(1L, pastLength + tokens.Length).ToArray(), 1, pastLength + tokens.Length);
        var names = new List<string> { "input_ids", "attention_mask" };
        var outNames = new List<string> { "logits" };
        for (int i = 0; i < layers; i++)
        {
            names.AddRange([$"past_key_values.{i}.key", $"past_key_values.{i}.value"]);
            outNames.AddRange([$"present.{i}.key", $"present.{i}.value"]);
        }
        using var run = new RunOptions();
        var outputs = s.Run(run, names, [ids, mask, .. past], outNames).ToArray();
        var logits = OrtValues.ToFloats(outputs[0]);
        outputs[0].Dispose();
        return (logits, outputs[1..]);
    }

    private static OrtValue[] EmptyPast(InferenceSession s)
    {
        var layers = s.InputMetadata.Keys.Count(k => k.StartsWith("past_key_values.", StringComparison.Ordinal)) / 2;
        var dims = s.InputMetadata["past_key_values.0.key"].Dimensions;
        return Enumerable.Range(0, 2 * layers).Select(_ => OrtValues.Zeros(ElementType.Float, 1, dims[1], 0, dims[3])).ToArray();
    }

    private static void AssertClose(float[] expected, ReadOnlySpan<float> actual, float tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        float worst = 0;
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        Assert.True(worst <= tolerance, $"max |difference| {worst} > {tolerance}");
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("gpt2")]
    [InlineData("qwen2")]
    public void CacheGraphHasOptimumInputsAndOutputs(string name)
    {
        var (_, cached) = FixtureModels(name);
        var inputs = cached.Graph.Inputs.Select(v => v.Name).ToArray();
        var outputs = cached.Graph.Outputs.Select(v => v.Name).ToArray();
        Assert.Equal(["input_ids", "attention_mask", "past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value"], inputs);
        Assert.Equal(["logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"], outputs);
        Assert.DoesNotContain(cached.Graph.Nodes, n => n.Domain.Length != 0);
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("gpt2")]
    [InlineData("qwen2")]
    public void CacheGraphWithEmptyPastGivesThePlainLogits(string name)
    {
        var (plain, cached) = FixtureModels(name);
        using var p = SessionFactory.Create(plain);
        using var c = SessionFactory.Create(cached);
        var prompt = Prompts[0];
        var expected = PlainLogits(p, prompt);
        var past = EmptyPast(c);
        var (logits, present) = CachedStep(c, prompt, 0, past);
        try
        {
            AssertClose(expected, logits, 1e-5f);
            Assert.Equal(prompt.Length, OrtValues.ShapeOf(present[0])[2]);
        }
        finally
        {
            foreach (var v in past.Concat(present)) v.Dispose();
        }
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("gpt2")]
    [InlineData("qwen2")]
    public void PrefillThenStepsGiveTheRecomputedLogits(string name)
    {
        var (plain, cached) = FixtureModels(name);
        using var p = SessionFactory.Create(plain);
        using var c = SessionFactory.Create(cached);
        int[] sequence = [5, 17, 42, 8, 3, 61, 29, 77, 14, 90, 1, 36];
        const int prefill = 5;
        var past = EmptyPast(c);
        try
        {
            var (logits, present) = CachedStep(c, sequence[..prefill], 0, past);
            foreach (var v in past) v.Dispose();
            past = present;
            int vocab = logits.Length / prefill;
            AssertClose(PlainLogits(p, sequence[..prefill])[^vocab..], logits.AsSpan(^vocab..), 1e-4f);
            for (int t = prefill; t < sequence.Length; t++)
            {
                (logits, present) = CachedStep(c, [sequence[t]], t, past);
                foreach (var v in past) v.Dispose();
                past = present;
                Assert.Equal(t + 1, OrtValues.ShapeOf(past[0])[2]);
                AssertClose(PlainLogits(p, sequence[..(t + 1)])[^vocab..], logits, 1e-4f);
            }
        }
        finally
        {
            foreach (var v in past) v.Dispose();
        }
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("gpt2")]
    [InlineData("qwen2")]
    [InlineData("tiny")]
    public void GreedyTokensAreTheSameWithAndWithoutTheCache(string name)
    {
        var (plain, cached) = Models(name);
        using var withCache = new Generator(cached);
        using var without = new Generator(plain);
        Assert.True(withCache.UsesCache);
        Assert.False(without.UsesCache);
        var options = new GenerationOptions { MaxNewTokens = 20 };
        var a = withCache.Generate(Prompts, options);
        var b = without.Generate(Prompts, options);
        Assert.Equal(2, a.Count);
        for (int r = 0; r < 2; r++)
        {
            Assert.Equal(b[r].Tokens, a[r].Tokens);
            Assert.Equal(20, a[r].Tokens.Length);
            Assert.Equal(FinishReason.MaxNewTokens, a[r].Reason);
        }
        // A left-padded row generates what it generates alone.
        var alone = withCache.Generate([Prompts[1]], options);
        Assert.Equal(a[1].Tokens, alone[0].Tokens);
    }

    [Fact]
    public void EosStopsOnlyItsRowRightAfterTheEndToken()
    {
        var (_, cached) = Models("llama");
        using var g = new Generator(cached);
        var free = g.Generate(Prompts, new GenerationOptions { MaxNewTokens = 20 });
        var row0 = free[0].Tokens;
        // The first step (after the first) whose token is new in the row.
        int step = Enumerable.Range(1, row0.Length - 1).First(i => !row0[..i].Contains(row0[i]));
        int eos = row0[step];
        var stopped = g.Generate(Prompts, new GenerationOptions { MaxNewTokens = 20, EosTokenIds = [eos] });
        Assert.Equal(row0[..(step + 1)], stopped[0].Tokens);
        Assert.Equal(FinishReason.EndOfSequence, stopped[0].Reason);
        var row1 = free[1].Tokens;
        int cut = Array.IndexOf(row1, eos);
        Assert.Equal(cut < 0 ? row1 : row1[..(cut + 1)], stopped[1].Tokens);
    }

    [Fact]
    public void StopSequencesAndPredicateEndARow()
    {
        var (_, cached) = Models("gpt2");
        using var g = new Generator(cached);
        var free = g.Generate([Prompts[0]], new GenerationOptions { MaxNewTokens = 12 })[0].Tokens;
        var bySequence = g.Generate([Prompts[0]], new GenerationOptions { MaxNewTokens = 12, StopSequences = [free[3..5]] })[0];
        Assert.Equal(FinishReason.StopSequence, bySequence.Reason);
        Assert.True(bySequence.Tokens.Length <= 5);
        Assert.Equal(free[..bySequence.Tokens.Length], bySequence.Tokens);
        var byPredicate = g.Generate([Prompts[0]], new GenerationOptions { MaxNewTokens = 12, StopPredicate = t => t.Length == 4 })[0];
        Assert.Equal(FinishReason.StopPredicate, byPredicate.Reason);
        Assert.Equal(free[..4], byPredicate.Tokens);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void MaxNewTokensIsRespected(bool cache)
    {
        var (plain, cached) = Models("llama");
        using var g = new Generator(cache ? cached : plain);
        foreach (int n in new[] { 0, 1, 7 })
        {
            var result = g.Generate(Prompts, new GenerationOptions { MaxNewTokens = n });
            Assert.All(result, r => Assert.Equal(n, r.Tokens.Length));
            Assert.All(result, r => Assert.Equal(FinishReason.MaxNewTokens, r.Reason));
        }
    }

    [Fact]
    public void SeededSamplingIsReproducibleAndDependsOnTheSeed()
    {
        var (plain, cached) = Models("llama");
        using var g = new Generator(cached);
        using var recompute = new Generator(plain);
        var options = new GenerationOptions { MaxNewTokens = 20, Temperature = 1.0f, Seed = 1 };
        var first = g.Generate(Prompts, options);
        var again = g.Generate(Prompts, options);
        var other = g.Generate(Prompts, options with { Seed = 2 });
        var recomputed = recompute.Generate(Prompts, options);
        for (int r = 0; r < 2; r++)
        {
            Assert.Equal(first[r].Tokens, again[r].Tokens);
            Assert.Equal(first[r].Tokens, recomputed[r].Tokens);
        }
        Assert.False(first[0].Tokens.SequenceEqual(other[0].Tokens) && first[1].Tokens.SequenceEqual(other[1].Tokens));
    }

    [Fact]
    public void TinyTopPEqualsGreedy()
    {
        var (_, cached) = Models("llama");
        using var g = new Generator(cached);
        var greedy = g.Generate(Prompts, new GenerationOptions { MaxNewTokens = 20 });
        var nucleus = g.Generate(Prompts, new GenerationOptions { MaxNewTokens = 20, Temperature = 1.5f, TopP = 1e-6f, Seed = 3 });
        for (int r = 0; r < 2; r++) Assert.Equal(greedy[r].Tokens, nucleus[r].Tokens);
    }

    [Fact]
    public void DefaultGraphsAreUnchangedByTheOption()
    {
        var config = LlamaConfig.Tiny;
        var a = LlamaGraph.Build(config, seed: 0);
        var b = LlamaGraph.Build(config, seed: 0, options: DecoderGraphOptions.Default);
        Assert.Equal(a.Graph.Nodes.Select(n => n.OpType), b.Graph.Nodes.Select(n => n.OpType));
        Assert.Equal(["input_ids"], a.Graph.Inputs.Select(v => v.Name));
    }

    [Fact]
    public void InvalidOptionsAndPromptsAreRejected()
    {
        using var g = new Generator(Models("llama").cached);
        Assert.Throws<UserInputException>(() => g.Generate(Prompts, new GenerationOptions { TopP = 0 }));
        Assert.Throws<UserInputException>(() => g.Generate(Prompts, new GenerationOptions { Temperature = -1 }));
        Assert.Throws<UserInputException>(() => g.Generate([[]], new GenerationOptions()));
    }
}

public sealed class PositionIdsTests
{
    [Fact]
    public void Positions_skip_left_padding()
    {
        long[] mask = [0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
        Assert.Equal([0L, 0, 0, 1, 2], SafeTune.Models.Generation.Generator.Positions(mask[..5], 1, 5, 5));
        Assert.Equal([1L, 2, 2, 3], SafeTune.Models.Generation.Generator.Positions([0, 1, 1, 1, 1, 1, 1, 1], 2, 4, 2));
    }

    [Fact]
    public void Models_taking_position_ids_get_them_and_padding_does_not_change_the_tokens()
    {
        // A toy model in the shape of an Optimum export without a cache: input_ids, attention_mask and position_ids.
        var b = SafeTune.Onnx.GraphBuilder.ForNewModel(17);
        var ids = b.Input("input_ids", SafeTune.Onnx.ElementType.Int64, SafeTune.Onnx.Dim.Symbol("batch"), SafeTune.Onnx.Dim.Symbol("sequence"));
        b.Input("attention_mask", SafeTune.Onnx.ElementType.Int64, SafeTune.Onnx.Dim.Symbol("batch"), SafeTune.Onnx.Dim.Symbol("sequence"));
        var pos = b.Input("position_ids", SafeTune.Onnx.ElementType.Int64, SafeTune.Onnx.Dim.Symbol("batch"), SafeTune.Onnx.Dim.Symbol("sequence"));
        var rng = new Random(3);
        float[] Rand(int n) => [.. Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() - 0.5))];
        var h = b.Add(b.Gather(b.Parameter("tok", Rand(16 * 8), 16, 8), ids), b.Gather(b.Parameter("pos", Rand(64 * 8), 64, 8), pos));
        b.Output(b.MatMul(b.Tanh(h), b.Parameter("head", Rand(8 * 16), 8, 16)), "logits");
        using var generator = new SafeTune.Models.Generation.Generator(b.Model!);
        var options = new SafeTune.Models.Generation.GenerationOptions { MaxNewTokens = 6 };
        var together = generator.Generate([[1, 2, 3, 4, 5], [7, 8]], options);
        var alone = generator.Generate([[7, 8]], options);
        Assert.Equal(alone[0].Tokens, together[1].Tokens);
    }
}
