using Microsoft.ML.OnnxRuntime;
using SafeTune.Models.Chat;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Safety.Activations;
using SafeTune.TestSupport;

namespace SafeTune.Safety.Tests;

public sealed class ActivationTests : IDisposable
{
    private static readonly string[] Prompts =
    [
        "How do I bake bread?",
        "Explain in detail how photosynthesis converts sunlight, water and carbon dioxide into sugar and oxygen in plants.",
        "Hi",
        "What is the capital of France, and what is it famous for?",
    ];

    private readonly TempDir _dir = new();
    private readonly TextTokenizer _tokenizer;

    public ActivationTests() => _tokenizer = TokenizerLoader.Load(MiniLm.WriteVocab(_dir.File("vocab.txt")));

    public void Dispose() => _dir.Dispose();

    private ActivationExtractor MiniLmExtractor(ActivationOptions? options = null) => new(MiniLm.Load(), _tokenizer, null, options);

    private static void Close(float[] expected, float[] actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"element {i}: {expected[i]} vs {actual[i]}");
    }

    // By hand: MiniLM's own last_hidden_state for one unpadded prompt, averaged over its tokens.
    private static float[] LastHiddenStateMean(InferenceSession session, int[] ids)
    {
        int n = ids.Length;
        var h = LastHiddenState(session, ids);
        var mean = new float[MiniLm.Width];
        for (int j = 0; j < mean.Length; j++)
        {
            double sum = 0;
            for (int t = 0; t < n; t++) sum += h[t * MiniLm.Width + j];
            mean[j] = (float)(sum / n);
        }
        return mean;
    }

    /// <summary>MiniLM's last hidden state of one unpadded prompt: n rows of the width.</summary>
    private static float[] LastHiddenState(InferenceSession session, int[] ids)
    {
        int n = ids.Length;
        var feeds = new Dictionary<string, OrtValue>
        {
            ["input_ids"] = OrtValues.Wrap(ids.Select(t => (long)t).ToArray(), 1, n),
            ["attention_mask"] = OrtValues.Wrap(Enumerable.Repeat(1L, n).ToArray(), 1, n),
            ["token_type_ids"] = OrtValues.Wrap(new long[n], 1, n),
        };
        try
        {
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, feeds, ["last_hidden_state"]);
            return OrtValues.ToFloats(outputs[0]);
        }
        finally
        {
            foreach (var v in feeds.Values) v.Dispose();
        }
    }

    [Fact]
    public void Prompts_are_held_to_the_model_s_context_and_a_multi_megabyte_one_is_cut_before_tokenizing()
    {
        var model = MiniLm.Load();
        model.MetadataProps.Add(new(SafeTune.Models.Generation.ContextLength.MetadataKey, "16"));
        using var x = new ActivationExtractor(model, _tokenizer, null, new ActivationOptions { MaxLength = 512 });
        Assert.Equal(16, x.Options.MaxLength);

        // About 6 MB on one line: cut to what 16 tokens could hold before the tokenizer sees it.
        var huge = string.Join(' ', Enumerable.Repeat("bread", 1_000_000));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(16, x.Tokenize(huge).Length);
        var features = x.Extract([huge, "Hi"]);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        Assert.All(features, f => Assert.All(f, v => Assert.True(float.IsFinite(v))));
    }

    [Fact]
    public void MiniLm_features_have_the_hidden_width()
    {
        using var x = MiniLmExtractor();
        Assert.Equal(MiniLm.Layers, x.LayerCount);
        Assert.Equal(MiniLm.Width, x.Width);
        Assert.True(x.HasAttentionMask);
        var f = x.Extract(Prompts);
        Assert.Equal(Prompts.Length, f.Length);
        Assert.All(f, row => Assert.Equal(MiniLm.Width, row.Length));
        Assert.All(f, row => Assert.All(row, v => Assert.True(float.IsFinite(v))));
        var flat = x.ExtractFlat(Prompts, out int width);
        Assert.Equal(MiniLm.Width, width);
        Assert.Equal(f.SelectMany(r => r), flat);
    }

    [Theory]
    [InlineData(ActivationPooling.MeanTokensThenLayers)]
    [InlineData(ActivationPooling.LastToken)]
    public void Padding_is_ignored(ActivationPooling pooling)
    {
        using var x = MiniLmExtractor(new ActivationOptions { Pooling = pooling, BatchSize = 16 });
        var batched = x.Extract(Prompts);
        for (int i = 0; i < Prompts.Length; i++) Close(x.Extract([Prompts[i]])[0], batched[i], 1e-5);
    }

    [Fact]
    public void Mean_over_layers_is_the_average_of_single_layer_features()
    {
        using var all = MiniLmExtractor();
        var mean = all.Extract(Prompts);
        var perLayer = Enumerable.Range(0, MiniLm.Layers).Select(l =>
        {
            using var one = MiniLmExtractor(new ActivationOptions { Layers = [l] });
            return one.Extract(Prompts);
        }).ToArray();
        for (int i = 0; i < Prompts.Length; i++)
        {
            var avg = new float[MiniLm.Width];
            for (int j = 0; j < avg.Length; j++) avg[j] = (float)perLayer.Average(p => (double)p[i][j]);
            Close(avg, mean[i], 1e-5);
        }
    }

    [Theory]
    [InlineData(ActivationPooling.MeanTokensThenLayers)]
    [InlineData(ActivationPooling.LastToken)]
    public void Per_layer_features_average_to_the_pooled_features(ActivationPooling pooling)
    {
        using var x = MiniLmExtractor(new ActivationOptions { Pooling = pooling, Layers = [1, 3, 4] });
        var pooled = x.Extract(Prompts);
        var perLayer = x.ExtractPerLayer(Prompts);
        for (int i = 0; i < Prompts.Length; i++)
        {
            Assert.Equal(3 * MiniLm.Width, perLayer[i].Length);
            var avg = new float[MiniLm.Width];
            for (int j = 0; j < avg.Length; j++) avg[j] = (perLayer[i][j] + perLayer[i][MiniLm.Width + j] + perLayer[i][2 * MiniLm.Width + j]) / 3;
            Close(pooled[i], avg, 1e-5);
        }
        using var one = MiniLmExtractor(new ActivationOptions { Pooling = pooling, Layers = [3] });
        var layer3 = one.Extract(Prompts);
        for (int i = 0; i < Prompts.Length; i++) Close(layer3[i], perLayer[i][MiniLm.Width..(2 * MiniLm.Width)], 1e-6);
    }

    [Fact]
    public void Concatenated_layers_hold_each_layer_s_token_mean_side_by_side()
    {
        using var x = MiniLmExtractor(new ActivationOptions { Pooling = ActivationPooling.MeanTokensConcatLayers, Layers = [1, 5], BatchSize = 3 });
        Assert.Equal(2 * MiniLm.Width, x.FeatureLength);
        var rows = x.Extract(Prompts);
        using var mean = MiniLmExtractor(new ActivationOptions { Layers = [1, 5] });
        var perLayer = mean.ExtractPerLayer(Prompts);
        var averaged = mean.Extract(Prompts);
        var model = MiniLm.Load();
        using var session = SessionFactory.Create(model);
        for (int i = 0; i < Prompts.Length; i++)
        {
            Assert.Equal(2 * MiniLm.Width, rows[i].Length);
            Close(perLayer[i], rows[i], 1e-6);
            // By hand: the second block is the mean of the model's last hidden state over the prompt's tokens, and the
            // two blocks' average is the mean pooling's row.
            Close(LastHiddenStateMean(session, x.Tokenize(Prompts[i])), rows[i][MiniLm.Width..], 1e-4);
            var avg = new float[MiniLm.Width];
            for (int j = 0; j < avg.Length; j++) avg[j] = (rows[i][j] + rows[i][MiniLm.Width + j]) / 2;
            Close(averaged[i], avg, 1e-5);
        }
    }

    [Fact]
    public void Attention_pooling_weighs_each_token_s_concatenated_layers_by_the_softmax_of_the_query_scores()
    {
        var rng = new Random(3);
        float[] query = [.. Enumerable.Range(0, 2 * MiniLm.Width).Select(_ => (float)(rng.NextDouble() * 2 - 1) * 0.2f)];
        using var x = MiniLmExtractor(new ActivationOptions { Pooling = ActivationPooling.AttentionWeighted, Layers = [1, 5], BatchSize = 3, AttentionQuery = query });
        Assert.Equal(2 * MiniLm.Width, x.FeatureLength);
        var rows = x.Extract(Prompts);
        var states = new float[Prompts.Length][];
        x.ExtractTokenStates(Prompts, (i, f) => states[i] = f);
        using var concat = MiniLmExtractor(new ActivationOptions { Pooling = ActivationPooling.MeanTokensConcatLayers, Layers = [1, 5] });
        var means = concat.Extract(Prompts);
        var model = MiniLm.Load();
        using var session = SessionFactory.Create(model);
        for (int i = 0; i < Prompts.Length; i++)
        {
            int n = x.Tokenize(Prompts[i]).Length, f = 2 * MiniLm.Width;
            Assert.Equal(n * f, states[i].Length);
            // The token rows: layer 5 (the model's last hidden state) in the second half of each row, their mean the concat row.
            var last = LastHiddenState(session, x.Tokenize(Prompts[i]));
            for (int t = 0; t < n; t++) Close(last[(t * MiniLm.Width)..((t + 1) * MiniLm.Width)], states[i][(t * f + MiniLm.Width)..((t + 1) * f)], 1e-4);
            var mean = new float[f];
            for (int t = 0; t < n; t++)
                for (int j = 0; j < f; j++) mean[j] += states[i][t * f + j] / n;
            Close(means[i], mean, 1e-5);
            // By hand: softmax of the query's scores over the tokens, then the weighted sum of the rows.
            var scores = Enumerable.Range(0, n).Select(t => Enumerable.Range(0, f).Sum(j => (double)query[j] * states[i][t * f + j])).ToArray();
            var w = scores.Select(v => Math.Exp(v - scores.Max())).ToArray();
            var expected = new float[f];
            for (int t = 0; t < n; t++)
                for (int j = 0; j < f; j++) expected[j] += (float)(w[t] / w.Sum() * states[i][t * f + j]);
            Close(expected, rows[i], 1e-4);
            Assert.True(w.Max() / w.Sum() > 1.5 / n, $"prompt {i}: the weights are nearly uniform");
        }
        // Alone or in a padded batch, the same rows.
        for (int i = 0; i < Prompts.Length; i++) Close(x.Extract([Prompts[i]])[0], rows[i], 1e-5);
    }

    [Fact]
    public void Attention_pooling_with_a_zero_query_is_the_concatenated_mean()
    {
        using var x = MiniLmExtractor(new ActivationOptions { Pooling = ActivationPooling.AttentionWeighted, Layers = [2, 3], AttentionQuery = new float[2 * MiniLm.Width] });
        using var concat = MiniLmExtractor(new ActivationOptions { Pooling = ActivationPooling.MeanTokensConcatLayers, Layers = [2, 3] });
        var a = x.Extract(Prompts);
        var b = concat.Extract(Prompts);
        for (int i = 0; i < Prompts.Length; i++) Close(b[i], a[i], 1e-5);
    }

    [Fact]
    public void Attention_pooling_needs_a_query_of_the_feature_length()
    {
        using var none = MiniLmExtractor(new ActivationOptions { Pooling = ActivationPooling.AttentionWeighted, Layers = [2, 3] });
        Assert.Contains("query", Assert.Throws<InvalidOperationException>(() => none.Extract(Prompts)).Message);
        var e = Assert.Throws<UserInputException>(() => MiniLmExtractor(new ActivationOptions { Pooling = ActivationPooling.AttentionWeighted, Layers = [2, 3], AttentionQuery = new float[MiniLm.Width] }));
        Assert.Contains($"{MiniLm.Width} values", e.Message);
        e = Assert.Throws<UserInputException>(() => MiniLmExtractor(new ActivationOptions { Layers = [2, 3], AttentionQuery = new float[2 * MiniLm.Width] }));
        Assert.Contains("attention-weighted", e.Message);
    }

    [Fact]
    public void Last_token_pooling_differs_from_the_mean()
    {
        using var mean = MiniLmExtractor();
        using var last = MiniLmExtractor(new ActivationOptions { Pooling = ActivationPooling.LastToken });
        var a = mean.Extract(Prompts);
        var b = last.Extract(Prompts);
        for (int i = 0; i < Prompts.Length; i++)
            Assert.True(a[i].Zip(b[i]).Max(p => Math.Abs(p.First - p.Second)) > 1e-3);
    }

    [Fact]
    public void Last_layer_equals_the_masked_mean_of_the_models_own_output()
    {
        using var x = MiniLmExtractor(new ActivationOptions { Layers = [5] });
        var features = x.Extract(Prompts);
        var model = MiniLm.Load();
        using var session = SessionFactory.Create(model);
        for (int i = 0; i < Prompts.Length; i++)
        {
            var ids = x.Tokenize(Prompts[i]);
            Assert.Equal(_tokenizer.Encode(Prompts[i], addSpecialTokens: true), ids);
            Close(LastHiddenStateMean(session, ids), features[i], 1e-4);
        }
    }

    [Fact]
    public void Extraction_is_deterministic_and_streams_by_index()
    {
        using var x = MiniLmExtractor(new ActivationOptions { BatchSize = 3 });
        var a = x.Extract(Prompts);
        var streamed = new float[Prompts.Length][];
        x.Extract(Prompts, (i, f) => streamed[i] = f);
        for (int i = 0; i < Prompts.Length; i++) Assert.Equal(a[i], streamed[i]);
        using var y = MiniLmExtractor(new ActivationOptions { BatchSize = 3 });
        var b = y.Extract(Prompts);
        for (int i = 0; i < Prompts.Length; i++) Assert.Equal(a[i], b[i]);
    }

    [Fact]
    public void Chat_template_renders_the_prompt_and_truncation_keeps_its_end()
    {
        using var x = new ActivationExtractor(MiniLm.Load(), _tokenizer, ChatTemplates.Plain, new ActivationOptions { MaxLength = 8 });
        var full = _tokenizer.Encode(ChatTemplates.Plain.RenderPrompt([ChatMessage.User(Prompts[1])]));
        var ids = x.Tokenize(Prompts[1]);
        Assert.Equal(full[^8..], ids);
        Assert.Equal(MiniLm.Width, x.Extract([Prompts[1]])[0].Length);
    }

    [Fact]
    public void Bad_layer_subset_is_refused()
    {
        Assert.Throws<UserInputException>(() => MiniLmExtractor(new ActivationOptions { Layers = [6] }));
    }

    [Fact]
    public void Decoder_without_attention_mask_reads_width_32_and_ignores_right_padding()
    {
        var model = Model.Load(Repo.Fixture("models", "llama_tiny_folded.onnx"));
        int[][] prompts = [[63, 56, 57], [73, 10, 43, 49, 15, 22, 52, 8, 9], [5], [1, 2, 3, 4, 5, 6]];
        foreach (var pooling in new[] { ActivationPooling.MeanTokensThenLayers, ActivationPooling.LastToken })
        {
            using var x = new ActivationExtractor(model, null, null, new ActivationOptions { Pooling = pooling });
            Assert.False(x.HasAttentionMask);
            Assert.Equal(2, x.LayerCount);
            var batched = x.ExtractTokens(prompts);
            Assert.All(batched, row => Assert.Equal(32, row.Length));
            for (int i = 0; i < prompts.Length; i++) Close(x.ExtractTokens([prompts[i]])[0], batched[i], 1e-5);

            using var grouped = new ActivationExtractor(model, null, null, new ActivationOptions { Pooling = pooling, EqualLengthBatchesWithoutMask = true });
            var g = grouped.ExtractTokens(prompts);
            for (int i = 0; i < prompts.Length; i++) Close(g[i], batched[i], 1e-5);
        }
    }
}
