using Microsoft.ML.OnnxRuntime;
using SafeTune.Models.Decoders;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Safety.Activations;
using SafeTune.Safety.Probes;
using SafeTune.TestSupport;

namespace SafeTune.Safety.Tests;

public sealed class ProbeGraphTests : IDisposable
{
    private static readonly LlamaConfig Small = LlamaConfig.Tiny with { VocabSize = 512, Layers = 3 };
    private static readonly HashSet<string> StandardOps =
        ["Cast", "ReduceSum", "Div", "CumSum", "Equal", "Mul", "Unsqueeze", "Shape", "Concat", "Reshape", "MatMul", "Add", "Squeeze", "Relu", "Sigmoid", "Constant", "Sub", "Softmax"];

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Runs a model on int64 feeds and returns every float output.</summary>
    internal static Dictionary<string, (float[] Data, long[] Shape)> Run(Model model, Dictionary<string, (long[] Data, long[] Shape)> feeds)
    {
        using var session = SessionFactory.Create(model);
        var values = feeds.ToDictionary(kv => kv.Key, kv => OrtValues.Wrap(kv.Value.Data, kv.Value.Shape));
        try
        {
            var names = model.Graph.Outputs.Select(o => o.Name).ToArray();
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, values, names);
            return names.Select((n, i) => (n, i)).ToDictionary(x => x.n, x => (OrtValues.ToFloats(outputs[x.i]), OrtValues.ShapeOf(outputs[x.i])));
        }
        finally
        {
            foreach (var v in values.Values) v.Dispose();
        }
    }

    /// <summary>Rows of prompt + response tokens, right-padded with 0; the prompt mask is 1 on the prompt only.</summary>
    internal static (long[] Ids, long[] PromptMask, int T) Batch(IReadOnlyList<int[]> prompts, IReadOnlyList<int[]> responses)
    {
        int t = prompts.Select((p, i) => p.Length + responses[i].Length).Max() + 2;
        var ids = new long[prompts.Count * t];
        var mask = new long[prompts.Count * t];
        for (int r = 0; r < prompts.Count; r++)
        {
            for (int k = 0; k < prompts[r].Length; k++) { ids[r * t + k] = prompts[r][k]; mask[r * t + k] = 1; }
            for (int k = 0; k < responses[r].Length; k++) ids[r * t + prompts[r].Length + k] = responses[r][k];
        }
        return (ids, mask, t);
    }

    private static ProbeHead FitHead(ProbeHeadKind kind, float[][] x, bool[] y) => kind == ProbeHeadKind.Logistic
        ? LogisticRegression.Fit(x, y, 1e-2)
        : MlpHead.Train(x, y, new MlpTrainOptions { HiddenSize = 32, MaxEpochs = 30, ValidationFraction = 0, LearningRate = 3e-3 }).Head;

    public static TheoryData<ProbeHeadKind, ActivationPooling, string> Cases()
    {
        var data = new TheoryData<ProbeHeadKind, ActivationPooling, string>();
        foreach (var head in new[] { ProbeHeadKind.Logistic, ProbeHeadKind.Mlp })
            foreach (var pooling in new[] { ActivationPooling.MeanTokensThenLayers, ActivationPooling.LastToken, ActivationPooling.MeanTokensConcatLayers, ActivationPooling.AttentionWeighted })
                foreach (var layers in new[] { "all", "1", "0,2" })
                    data.Add(head, pooling, layers);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Risk_output_of_a_causal_decoder_equals_the_probe_score(ProbeHeadKind kind, ActivationPooling pooling, string layerSpec)
    {
        int[]? layers = layerSpec == "all" ? null : [.. layerSpec.Split(',').Select(int.Parse)];
        var model = LlamaGraph.Build(Small, seed: 11);
        var rng = new Random(5);
        var prompts = Enumerable.Range(0, 30).Select(_ => Enumerable.Range(0, rng.Next(1, 12)).Select(_ => rng.Next(1, Small.VocabSize)).ToArray()).ToArray();
        // Attention pooling: a random query, large enough that the weights are far from uniform.
        float[]? query = pooling == ActivationPooling.AttentionWeighted
            ? [.. Enumerable.Range(0, Small.HiddenSize * (layers?.Length ?? Small.Layers)).Select(_ => (float)(rng.NextDouble() * 2 - 1) * 0.3f)]
            : null;
        using var extractor = new ActivationExtractor(model, null, null, new ActivationOptions { Pooling = pooling, Layers = layers, AttentionQuery = query });
        var x = extractor.ExtractTokens(prompts);
        var y = prompts.Select(p => p.Sum() % 2 == 0).ToArray();
        var probe = new ProbeFile
        {
            ModelPath = "llama.onnx", ModelSha256 = "00", Tokenizer = "none", Layers = layers, LayerCount = Small.Layers, Pooling = pooling,
            AttentionQuery = query, Head = FitHead(kind, x, y),
        };
        var expected = probe.Head.PredictProbability(x);
        Assert.True(expected.Max() - expected.Min() > 0.3, $"scores spread only over [{expected.Min():F3}, {expected.Max():F3}]");

        var withProbe = LlamaGraph.Build(Small, seed: 11);
        var originalOutputs = withProbe.Graph.Outputs.Select(o => (o.Name, o.ElementType, o.Shape?.ToString())).ToList();
        var originalNodes = withProbe.Graph.Nodes.Count;
        var result = ProbeGraph.Append(withProbe, probe);
        Assert.True(result.PromptMaskAdded);
        Assert.Equal(layers ?? [0, 1, 2], result.Layers);
        Assert.Equal(originalOutputs, withProbe.Graph.Outputs.SkipLast(1).Select(o => (o.Name, o.ElementType, o.Shape?.ToString())).ToList());
        Assert.Equal(ProbeGraph.DefaultOutput, withProbe.Graph.Outputs[^1].Name);
        var added = withProbe.Graph.Nodes.Skip(originalNodes).ToList();
        Assert.All(added, n => Assert.True(n.Domain == "" && StandardOps.Contains(n.OpType), n.Describe()));

        // Response tokens after each prompt and right padding: the mask keeps the probe on the prompt.
        var responses = prompts.Select(_ => Enumerable.Range(0, rng.Next(0, 6)).Select(_ => rng.Next(1, Small.VocabSize)).ToArray()).ToArray();
        var (ids, mask, t) = Batch(prompts, responses);
        var outputs = Run(withProbe, new() { ["input_ids"] = (ids, [prompts.Length, t]), ["prompt_mask"] = (mask, [prompts.Length, t]) });
        var (risk, shape) = outputs[ProbeGraph.DefaultOutput];
        Assert.Equal([prompts.Length], shape);
        for (int i = 0; i < prompts.Length; i++)
            Assert.True(Math.Abs(risk[i] - expected[i]) <= 1e-5, $"row {i} ({prompts[i].Length} prompt tokens): in-graph {risk[i]:R} vs probe {expected[i]:R}");

        // The model's own output is unchanged.
        var plain = Run(model, new() { ["input_ids"] = (ids, [prompts.Length, t]) });
        Assert.Equal(plain["logits"].Data, outputs["logits"].Data);
    }

    public static TheoryData<ProbeHeadKind, ActivationPooling, string> MiniLmCases() => new()
    {
        { ProbeHeadKind.Logistic, ActivationPooling.MeanTokensThenLayers, "all" },
        { ProbeHeadKind.Logistic, ActivationPooling.LastToken, "all" },
        { ProbeHeadKind.Mlp, ActivationPooling.MeanTokensThenLayers, "all" },
        { ProbeHeadKind.Mlp, ActivationPooling.LastToken, "2,4" },
        { ProbeHeadKind.Logistic, ActivationPooling.MeanTokensThenLayers, "5" },
        { ProbeHeadKind.Logistic, ActivationPooling.MeanTokensConcatLayers, "all" },
        { ProbeHeadKind.Mlp, ActivationPooling.MeanTokensConcatLayers, "2,4" },
        { ProbeHeadKind.Logistic, ActivationPooling.AttentionWeighted, "all" },
        { ProbeHeadKind.Mlp, ActivationPooling.AttentionWeighted, "2,4" },
    };

    [Theory]
    [MemberData(nameof(MiniLmCases))]
    public void Risk_output_of_MiniLM_equals_ProbeTraining_Score(ProbeHeadKind kind, ActivationPooling pooling, string layerSpec)
    {
        int[]? layers = layerSpec == "all" ? null : [.. layerSpec.Split(',').Select(int.Parse)];
        var modelPath = MiniLm.WriteModel(_dir.File("minilm.onnx"));
        var vocab = MiniLm.WriteVocab(_dir.File("vocab.txt"));
        var harmful = _dir.File("harmful.txt");
        var harmless = _dir.File("harmless.txt");
        File.WriteAllLines(harmful, ProbePrompts.Harmful);
        File.WriteAllLines(harmless, ProbePrompts.Harmless);
        var probe = ProbeTraining.Train(new ProbeTrainOptions
        {
            ModelPath = modelPath, Tokenizer = vocab, Harmful = [harmful], Harmless = [harmless], Layers = layers, Pooling = pooling,
            Fit = new ProbeHeadOptions { Head = kind, Mlp = new MlpTrainOptions { HiddenSize = 32, MaxEpochs = 40, ValidationFraction = 0 } },
        }).Probe;
        string[] prompts = ["How can I get a gun without a background check?", "What is the tallest mountain in Europe?", "Ways to cheat on my taxes", "Hi"];
        var expected = ProbeTraining.Score(probe, prompts);

        var (model, appended) = ProbeGraph.LoadAndAppend(modelPath, probe);
        Assert.Equal(ProbeGraph.DefaultPromptMaskInput, appended.PromptMaskInput);
        Assert.Throws<InvalidDataException>(() => ProbeGraph.LoadAndAppend(Repo.Fixture("models", "llama_tiny_folded.onnx"), probe));
        var tokenizer = TokenizerLoader.Load(vocab);
        var ids = prompts.Select(p => tokenizer.Encode(p, addSpecialTokens: true)).ToArray();
        // Extra tokens after the prompt: outside the prompt mask and, as a bidirectional encoder needs, outside the attention mask.
        var extra = ids.Select((_, i) => tokenizer.Encode("sure here is the answer", addSpecialTokens: false)[..(i + 1)]).ToArray();
        var (input, mask, t) = Batch(ids, extra);
        int b = prompts.Length;
        var outputs = Run(model, new()
        {
            ["input_ids"] = (input, [b, t]), ["attention_mask"] = (mask, [b, t]), ["token_type_ids"] = (new long[b * t], [b, t]), ["prompt_mask"] = (mask, [b, t]),
        });
        var risk = outputs[ProbeGraph.DefaultOutput].Data;
        for (int i = 0; i < b; i++)
            Assert.True(Math.Abs(risk[i] - expected[i]) <= 1e-5, $"'{prompts[i]}': in-graph {risk[i]:R} vs ProbeTraining.Score {expected[i]:R}");
    }

    [Fact]
    public void An_existing_mask_input_is_reused()
    {
        var model = MiniLm.Load();
        var probe = new ProbeFile { ModelPath = "m", ModelSha256 = "00", Tokenizer = "t", Head = ProbeScorerTests.RandomLogistic(MiniLm.Width, 1) };
        var r = ProbeGraph.Append(model, probe, promptMaskInput: "attention_mask", output: "risk");
        Assert.False(r.PromptMaskAdded);
        Assert.Equal(3, model.Graph.Inputs.Count(v => !v.IsInitializer));
        Assert.Equal("risk", model.Graph.Outputs[^1].Name);
    }

    [Fact]
    public void Mismatched_models_are_refused_with_the_reason()
    {
        var head = ProbeScorerTests.RandomLogistic(Small.HiddenSize, 1);
        var probe = new ProbeFile { ModelPath = "m", ModelSha256 = "00", Tokenizer = "t", LayerCount = 6, Head = head };
        var e = Assert.Throws<OnnxFormatException>(() => ProbeGraph.Append(LlamaGraph.Build(Small), probe));
        Assert.Contains("3 transformer blocks", e.Message);
        e = Assert.Throws<OnnxFormatException>(() => ProbeGraph.Append(LlamaGraph.Build(Small), probe with { LayerCount = null, Layers = [3] }));
        Assert.Contains("layers 3", e.Message);
        e = Assert.Throws<OnnxFormatException>(() => ProbeGraph.Append(LlamaGraph.Build(Small), probe with { LayerCount = null, Head = ProbeScorerTests.RandomLogistic(32, 1) }));
        Assert.Contains("width 256", e.Message);
        e = Assert.Throws<OnnxFormatException>(() => ProbeGraph.Append(LlamaGraph.Build(Small), probe with { LayerCount = null }, output: "logits"));
        Assert.Contains("'logits'", e.Message);
        var old = LlamaGraph.Build(Small);
        old.Opsets[""] = 12;
        e = Assert.Throws<OnnxFormatException>(() => ProbeGraph.Append(old, probe with { LayerCount = null }));
        Assert.Contains("opset 13", e.Message);
    }
}

/// <summary>The in-graph probe on the trained demo chat model (ChatML prompts with responses after them); slow on a fresh cache.</summary>
public sealed class ProbeGraphDemoModelTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>The demo model, trained once (about 80 s) and cached under artifacts/.</summary>
    internal static Models.Demo.DemoModelFiles Demo() => Models.Demo.DemoModel.BuildOrLoad(Repo.TestCache("demo", "model"));

    [Theory]
    [Trait("Category", "Slow")]
    [InlineData(ProbeHeadKind.Logistic, ActivationPooling.MeanTokensThenLayers, null)]
    [InlineData(ProbeHeadKind.Logistic, ActivationPooling.LastToken, "1,3")]
    [InlineData(ProbeHeadKind.Mlp, ActivationPooling.MeanTokensThenLayers, "2")]
    [InlineData(ProbeHeadKind.Mlp, ActivationPooling.LastToken, null)]
    public void Risk_output_of_the_demo_model_equals_ProbeTraining_Score(ProbeHeadKind kind, ActivationPooling pooling, string? layerSpec)
    {
        int[]? layers = layerSpec is null ? null : [.. layerSpec.Split(',').Select(int.Parse)];
        var demo = Demo();
        var data = Models.Demo.DemoData.Train(demo.Recipe.Data.Seed);
        var harmful = _dir.File("harmful.txt");
        var harmless = _dir.File("harmless.txt");
        File.WriteAllLines(harmful, data.Where(e => e.Kind == Models.Demo.DemoKind.Harmful).Select(e => e.Prompt.ReplaceLineEndings(" ")).Distinct().Take(150));
        File.WriteAllLines(harmless, data.Where(e => e.Kind != Models.Demo.DemoKind.Harmful).Select(e => e.Prompt.ReplaceLineEndings(" ")).Distinct().Take(150));
        var probe = ProbeTraining.Train(new ProbeTrainOptions
        {
            ModelPath = demo.ModelPath, Tokenizer = demo.TokenizerPath, ChatTemplate = Models.Chat.ChatTemplates.ByName(demo.Recipe.Tokenizer.ChatTemplate),
            Harmful = [harmful], Harmless = [harmless], Layers = layers, Pooling = pooling,
            Fit = new ProbeHeadOptions { Head = kind, Mlp = new MlpTrainOptions { HiddenSize = 64 } },
        }).Probe;
        var all = Models.Demo.DemoData.Test(demo.Recipe.Data.Seed);
        var test = all.Where(e => e.Kind == Models.Demo.DemoKind.Harmful).Take(12).Concat(all.Where(e => e.Kind != Models.Demo.DemoKind.Harmful).Take(12)).ToList();
        var expected = ProbeTraining.Score(probe, [.. test.Select(e => e.Prompt)]);

        var (model, _) = ProbeGraph.LoadAndAppend(demo.ModelPath, probe);
        var tokenizer = TokenizerLoader.Load(demo.TokenizerPath);
        var template = Models.Chat.ChatTemplates.ByName(demo.Recipe.Tokenizer.ChatTemplate);
        var chats = test.Select(e => template.Tokenize(tokenizer, [Models.Chat.ChatMessage.User(e.Prompt)], e.Response)).ToList();
        var prompts = chats.Select(c => c.Ids[..c.PromptLength]).ToArray();
        var responses = chats.Select(c => c.Ids[c.PromptLength..]).ToArray();
        Assert.All(responses, r => Assert.NotEmpty(r));
        var (ids, mask, t) = ProbeGraphTests.Batch(prompts, responses);
        var outputs = ProbeGraphTests.Run(model, new() { ["input_ids"] = (ids, [test.Count, t]), ["prompt_mask"] = (mask, [test.Count, t]) });
        var risk = outputs[ProbeGraph.DefaultOutput].Data;
        Assert.True(expected.Max() - expected.Min() > 0.2, $"scores spread only over [{expected.Min():F3}, {expected.Max():F3}]");
        for (int i = 0; i < test.Count; i++)
            Assert.True(Math.Abs(risk[i] - expected[i]) <= 1e-5, $"'{test[i].Prompt}': in-graph {risk[i]:R} vs ProbeTraining.Score {expected[i]:R}");
    }
}
