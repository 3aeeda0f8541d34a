using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using SafeTune.Autodiff.Lora;
using SafeTune.Autodiff.Losses;
using SafeTune.Onnx;
using SafeTune.Onnx.Passes;
using SafeTune.Runtime;
using SafeTune.Runtime.Training;
using SafeTune.TestSupport;
using Xunit.Abstractions;

namespace SafeTune.Autodiff.Tests;

public sealed class LoraTests(ITestOutputHelper output)
{
    public static TheoryData<string, int, bool> FixtureProjections => new()
    {
        { "llama_tiny_folded", 14, false },
        { "llama_tiny_unfolded", 14, true },
        { "gpt2_tiny_folded", 8, false },
        { "gpt2_tiny_unfolded", 8, true },
    };

    public static TheoryData<string> Fixtures => new() { "llama_tiny_folded", "llama_tiny_unfolded", "gpt2_tiny_folded", "gpt2_tiny_unfolded" };

    private static readonly string[] LlamaProjections = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    // ---- which projections are adapted --------------------------------------------------------------------------------

    [Theory, MemberData(nameof(FixtureProjections))]
    public void DefaultPatternAdaptsEveryAttentionAndMlpProjectionButNotTheHead(string name, int expected, bool transposed)
    {
        var model = Load(name);
        var candidates = LoraPass.FindCandidates(model);
        var pass = new LoraPass(new LoraOptions { Rank = 4 });
        var result = PassRunner.Run(model, pass);

        Assert.True(result.Modified);
        Assert.Equal(expected, pass.Adapters.Count);
        Assert.Empty(pass.Skipped);
        Assert.DoesNotContain(pass.Adapters, a => a.NodeName.Contains("lm_head", StringComparison.Ordinal));
        // Every candidate but the LM head is adapted: the attention score/context MatMuls are not candidates at all.
        Assert.Equal(candidates.Where(c => c.NodeName != "/lm_head/MatMul").Select(c => c.NodeName), pass.Adapters.Select(a => a.NodeName));
        Assert.All(pass.Adapters, a => Assert.Equal(transposed, a.Transposed));
        string[] modules = name.StartsWith("llama", StringComparison.Ordinal) ? LlamaProjections : ["attn/c_attn", "attn/c_proj", "mlp/c_fc", "mlp/c_proj"];
        foreach (var m in modules)
            Assert.Equal(2, pass.Adapters.Count(a => a.NodeName.Contains($"/{m}/MatMul", StringComparison.Ordinal)));
        Assert.Equal(2 * expected, pass.TrainableParameters.Distinct().Count());

        var g = model.Graph;
        foreach (var a in pass.Adapters)
        {
            Assert.Equal(a.WeightName + ".lora_A", a.AName);
            Assert.Equal(a.WeightName + ".lora_B", a.BName);
            var av = g.FindInitializer(a.AName)!.Initializer!;
            var bv = g.FindInitializer(a.BName)!.Initializer!;
            Assert.Equal([4L, a.In], av.Dims);
            Assert.Equal([(long)a.Out, 4L], bv.Dims);
            Assert.All(bv.AsSpan<float>().ToArray(), v => Assert.Equal(0f, v));
            // Kaiming-uniform as PEFT draws it: U(-1/sqrt(in), 1/sqrt(in)).
            var values = av.AsSpan<float>().ToArray();
            double bound = 1 / Math.Sqrt(a.In);
            Assert.All(values, v => Assert.True(Math.Abs(v) <= bound, $"{a.AName}: {v} outside ±{bound}"));
            Assert.True(values.Max(Math.Abs) > 0.5 * bound, $"{a.AName} is not spread over its range");
            var w = g.FindInitializer(a.WeightName)!.Initializer!;
            Assert.Equal(transposed ? [a.Out, (long)a.In] : [a.In, (long)a.Out], w.Dims);
        }
        // The A/B matrices are the only new initializers; every original one is still there, in order.
        var original = Load(name);
        Assert.Equal(original.Graph.Initializers.Select(v => v.Name).Concat(pass.Adapters.SelectMany(a => new[] { a.AName, a.BName })),
            g.Initializers.Select(v => v.Name));
        Assert.Equal(original.Graph.Outputs.Select(o => o.Name), g.Outputs.Select(o => o.Name));
        Assert.Equal(original.Graph.Nodes.Count + 7 * expected, g.Nodes.Count);
        Assert.All(g.Nodes, n => Assert.Equal("", n.Domain));
        _ = g.TopologicalOrder(); // acyclic
    }

    [Theory]
    [InlineData("model.layers.0.self_attn.q_proj.weight", true)]
    [InlineData("/model/layers.3/mlp/down_proj/MatMul", true)]
    [InlineData("/transformer/h.0/attn/c_attn/MatMul", true)]
    [InlineData("transformer.h.1.mlp.c_proj.weight", true)]
    [InlineData("encoder.layer.0.attention.self.query.weight", true)]
    [InlineData("encoder.layer.0.intermediate.dense.weight", true)]
    [InlineData("gpt_neox.layers.0.attention.query_key_value.weight", true)]
    [InlineData("gpt_neox.layers.0.mlp.dense_h_to_4h.weight", true)]
    [InlineData("model.layers.0.self_attn.qkv_proj.weight", true)]
    [InlineData("model.layers.0.mlp.gate_up_proj.weight", true)]
    [InlineData("model.decoder.layers.0.self_attn.out_proj.weight", true)]
    [InlineData("model.decoder.layers.0.fc1.weight", true)]
    [InlineData("layers.0.attention.wq.weight", true)]
    [InlineData("layers.0.feed_forward.w2.weight", true)]
    [InlineData("transformer.blocks.0.attn.Wqkv.weight", true)]
    [InlineData("lm_head.weight", false)]
    [InlineData("/lm_head/MatMul", false)]
    [InlineData("model.embed_tokens.weight", false)]
    [InlineData("transformer.wte.weight", false)]
    [InlineData("transformer.wpe.weight", false)]
    [InlineData("gpt_neox.embed_in.weight", false)]
    [InlineData("embed_out.weight", false)]
    [InlineData("output.weight", false)]
    [InlineData("tok_embeddings.weight", false)]
    [InlineData("cls.predictions.decoder.weight", false)]
    [InlineData("onnx::MatMul_628", false)]
    [InlineData("/model/layers.0/self_attn/MatMul", false)]
    [InlineData("model.layers.0.self_attn.qk_proj_extra", false)]
    public void DefaultPatternMatchesProjectionsAndNotHeadsOrEmbeddings(string name, bool matches) =>
        Assert.Equal(matches, System.Text.RegularExpressions.Regex.IsMatch(name, LoraOptions.DefaultPattern));

    [Fact]
    public void NewNodesAreNamedUnderTheProjectionAndReadItsInput()
    {
        var model = Load("llama_tiny_unfolded");
        var pass = new LoraPass(new LoraOptions { Rank = 2, Alpha = 6 });
        PassRunner.Run(model, pass);
        var g = model.Graph;
        var q = pass.Adapters[0];
        Assert.Equal("/model/layers.0/self_attn/q_proj/MatMul", q.NodeName);
        Assert.Equal("model.layers.0.self_attn.q_proj.weight", q.WeightName);
        Assert.Equal("/model/layers.0/self_attn/q_proj/MatMul_output_0", q.OutputName);
        Assert.Equal(3.0, q.Scale);
        var lora = g.Nodes.Where(n => n.Name.StartsWith(q.NodeName + "/lora/", StringComparison.Ordinal)).ToList();
        Assert.Equal(["Transpose", "MatMul", "Transpose", "MatMul", "Constant", "Mul", "Add"], lora.Select(n => n.OpType));
        var add = g.GetValue(q.OutputName).Producer!;
        Assert.Same(lora[^1], add);
        var matmul = g.Nodes.Single(n => n.Name == q.NodeName);
        Assert.Same(matmul.Outputs[0], add.Input(0));
        Assert.Equal(q.OutputName + "_base", matmul.Outputs[0].Name);
        Assert.Same(matmul.Input(0), lora[1].Input(0));
        Assert.Equal(3f, lora[4].Outputs[0].ConstantData!.AsSpan<float>()[0]);
        // The old readers (the Reshape into heads) read y'.
        Assert.All(g.GetValue(q.OutputName).Uses, u => Assert.DoesNotContain("/lora/", u.Node.Name, StringComparison.Ordinal));
        Assert.Single(matmul.Outputs[0].Uses);
    }

    [Fact]
    public void BuilderStyleDecoderIsAdaptedAtEveryProjectionAndNotAtTheTiedHead()
    {
        var model = BuilderStyleDecoder(layers: 2);
        var pass = new LoraPass(new LoraOptions { Rank = 4 });
        PassRunner.Run(model, pass);
        Assert.Equal(14, pass.Adapters.Count);
        Assert.All(pass.Adapters, a => Assert.True(a.Transposed));
        Assert.All(LlamaProjections, p => Assert.Equal(2, pass.Adapters.Count(a => a.WeightName.EndsWith($".{p}.weight", StringComparison.Ordinal))));
        Assert.DoesNotContain(pass.Adapters, a => a.NodeName.Contains("lm_head", StringComparison.Ordinal));
        Assert.Empty(pass.Skipped);

        // Asking for the tied head as well: it is a candidate, but its weight is the embedding table, so it is skipped.
        var again = BuilderStyleDecoder(layers: 2);
        var withHead = new LoraPass(new LoraOptions { Rank = 4, Pattern = "lm_head|q_proj" });
        PassRunner.Run(again, withHead);
        Assert.Equal(2, withHead.Adapters.Count);
        var skipped = Assert.Single(withHead.Skipped);
        Assert.Equal("model.embed_tokens.weight", skipped.WeightName);
        Assert.True(skipped.Shared);

        // Only the head matched: nothing can be adapted, and the message says why.
        var head = new LoraPass(new LoraOptions { Pattern = "lm_head" });
        var e = Assert.Throws<OnnxFormatException>(() => PassRunner.Run(BuilderStyleDecoder(layers: 1), head));
        Assert.Contains("shared", e.Message, StringComparison.Ordinal);
        Assert.Contains("model.embed_tokens.weight", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BuilderStyleDecoderKeepsAndMergesItsLogits()
    {
        var original = BuilderStyleDecoder(layers: 2);
        long[] ids = [1, 5, 9, 3, 0, 7, 2, 8];
        var before = Logits(original, ids, [2, 4]);
        var lora = BuilderStyleDecoder(layers: 2);
        var pass = new LoraPass(new LoraOptions { Rank = 3, Alpha = 5, Seed = 3 });
        PassRunner.Run(lora, pass);
        Assert.True(SameValues(before, Logits(lora, ids, [2, 4])));

        SetRandomB(lora, pass.Adapters, seed: 11, magnitude: 0.3);
        var adapted = Logits(lora, ids, [2, 4]);
        Assert.True(MaxAbsDiff(before, adapted) > 1e-3);
        LoraMerge.Merge(lora, pass.Adapters);
        Assert.True(MaxAbsDiff(adapted, Logits(lora, ids, [2, 4])) <= 1e-5);
        AssertSameGraph(BuilderStyleDecoder(layers: 2), lora, pass.Adapters);
    }

    [Fact]
    public void AdaptedGraphOutputKeepsItsNameAndMergeRestoresIt()
    {
        var b = GraphBuilder.ForNewModel(17);
        var x = b.Input("x", ElementType.Float, Dim.Symbol("batch"), 6);
        var rng = new Random(5);
        Value y;
        using (b.Scope("o_proj")) y = b.MatMul(x, b.Transpose(b.Parameter(RandomTensor("o_proj.weight", [4, 6], rng, 0.5)), 1, 0));
        b.Output(y, "y");
        var model = b.Model!;
        var originalNodes = model.Graph.Nodes.Select(n => n.ToString()).ToList();

        var pass = new LoraPass(new LoraOptions { Rank = 2, Alpha = 2 });
        PassRunner.Run(model, pass);
        var a = Assert.Single(pass.Adapters);
        Assert.Equal("y", a.OutputName);
        Assert.Equal("y", Assert.Single(model.Graph.Outputs).Name);
        Assert.Equal("Add", model.Graph.Outputs[0].Producer!.OpType);
        Assert.Equal(ElementType.Float, model.Graph.Outputs[0].ElementType);

        SetRandomB(model, pass.Adapters, seed: 2, magnitude: 0.5);
        var input = RandomTensor("x", [3, 6], new Random(9), 1);
        var adapted = RunFloat(model, "y", ("x", input));
        LoraMerge.Merge(model, pass.Adapters);
        Assert.Equal(originalNodes, model.Graph.Nodes.Select(n => n.ToString()));
        Assert.Equal("y", Assert.Single(model.Graph.Outputs).Name);
        Assert.Equal("MatMul", model.Graph.Outputs[0].Producer!.OpType);
        Assert.True(MaxAbsDiff(adapted, RunFloat(model, "y", ("x", input))) <= 1e-5);
    }

    // ---- equivalence in ONNX Runtime ----------------------------------------------------------------------------------

    [Theory, MemberData(nameof(Fixtures))]
    public void ZeroBLeavesTheLogitsExactlyUnchanged(string name)
    {
        var (ids, shape) = InputIds(name);
        var before = Logits(Load(name), ids, shape);
        var lora = Load(name);
        PassRunner.Run(lora, new LoraPass(new LoraOptions { Rank = 8, Seed = 1 }));
        var after = Logits(lora, ids, shape);
        output.WriteLine($"{name}: max |diff| = {MaxAbsDiff(before, after):e3}");
        Assert.True(SameValues(before, after), $"{name}: max |diff| = {MaxAbsDiff(before, after):e3}");
    }

    [Theory, MemberData(nameof(Fixtures))]
    public void MergedModelComputesTheLoraModelAndIsTheOriginalGraph(string name)
    {
        var (ids, shape) = InputIds(name);
        var original = Load(name);
        var before = Logits(original, ids, shape);
        var lora = Load(name);
        var pass = new LoraPass(new LoraOptions { Rank = 4, Alpha = 8, Seed = 7 });
        PassRunner.Run(lora, pass);
        SetRandomB(lora, pass.Adapters, seed: 13, magnitude: 0.2);
        var adapted = Logits(lora, ids, shape);
        Assert.True(MaxAbsDiff(before, adapted) > 1e-3, $"{name}: the adapters changed nothing");

        var aValues = pass.Adapters.ToDictionary(a => a.AName, a => lora.Graph.FindInitializer(a.AName)!.Initializer!);
        var bValues = pass.Adapters.ToDictionary(a => a.BName, a => lora.Graph.FindInitializer(a.BName)!.Initializer!);
        var merged = LoraMerge.Merge(lora, pass.Adapters);
        Assert.Same(lora, merged);
        var after = Logits(merged, ids, shape);
        double diff = MaxAbsDiff(adapted, after);
        output.WriteLine($"{name}: LoRA vs merged max |diff| = {diff:e3}; LoRA vs original {MaxAbsDiff(before, adapted):e3}");
        Assert.True(diff <= 1e-5, $"{name}: merged logits differ from the LoRA logits by {diff:e3}");

        AssertSameGraph(original, merged, pass.Adapters);
        // The adapted weights hold W + (alpha/r)·(B·A)ᵀ (or B·A for the [out, in] layout), checked element by element.
        foreach (var a in pass.Adapters)
        {
            var w0 = original.Graph.FindInitializer(a.WeightName)!.Initializer!.AsSpan<float>().ToArray();
            var w1 = merged.Graph.FindInitializer(a.WeightName)!.Initializer!.AsSpan<float>().ToArray();
            var av = aValues[a.AName].AsSpan<float>().ToArray();
            var bv = bValues[a.BName].AsSpan<float>().ToArray();
            for (int o = 0; o < a.Out; o++)
                for (int i = 0; i < a.In; i++)
                {
                    double delta = 0;
                    for (int k = 0; k < a.Rank; k++) delta += (double)bv[o * a.Rank + k] * av[k * a.In + i];
                    int at = a.Transposed ? o * a.In + i : i * a.Out + o;
                    Assert.Equal((float)(w0[at] + a.Scale * delta), w1[at]);
                }
        }
    }

    [Fact]
    public void MergeTakesTrainedValuesByName()
    {
        const string name = "llama_tiny_unfolded";
        var (ids, shape) = InputIds(name);
        var lora = Load(name);
        var pass = new LoraPass(new LoraOptions { Rank = 4, Alpha = 4, Seed = 2 });
        PassRunner.Run(lora, pass);

        // "Trained" values: new B for every adapter, new A for half of them; the rest come from the model.
        var rng = new Random(21);
        var trained = new Dictionary<string, TensorData>(StringComparer.Ordinal);
        for (int i = 0; i < pass.Adapters.Count; i++)
        {
            var a = pass.Adapters[i];
            trained[a.BName] = RandomTensor(a.BName, [a.Out, a.Rank], rng, 0.2);
            if (i % 2 == 0) trained[a.AName] = RandomTensor(a.AName, [a.Rank, a.In], rng, 0.2);
        }
        var reference = Model.FromBytes(lora.ToBytes());
        foreach (var (n, t) in trained) reference.Graph.SetInitializer(reference.Graph.FindInitializer(n)!, t);
        var expected = Logits(reference, ids, shape);

        // The LoRA model goes through its serialized form first, as it would between training and export.
        var reloaded = Model.FromBytes(lora.ToBytes());
        LoraMerge.Merge(reloaded, pass.Adapters, trained);
        double diff = MaxAbsDiff(expected, Logits(reloaded, ids, shape));
        Assert.True(diff <= 1e-5, $"merged with trained values: max |diff| = {diff:e3}");
        AssertSameGraph(Load(name), reloaded, pass.Adapters);

        // A trained value of the wrong shape is refused before anything changes.
        var again = Load(name);
        var p2 = new LoraPass(new LoraOptions { Rank = 4 });
        PassRunner.Run(again, p2);
        int nodes = again.Graph.Nodes.Count;
        var bad = new Dictionary<string, TensorData> { [p2.Adapters[3].BName] = RandomTensor(p2.Adapters[3].BName, [3, 3], rng, 1) };
        var e = Assert.Throws<OnnxFormatException>(() => LoraMerge.Merge(again, p2.Adapters, bad));
        Assert.Contains(p2.Adapters[3].BName, e.Message, StringComparison.Ordinal);
        Assert.Equal(nodes, again.Graph.Nodes.Count);
    }

    [Fact]
    public void MergedWeightFollowsTheLayout()
    {
        // W [in=2, out=3] read directly, and the same weight stored [out, in] read through a Transpose.
        var w = TensorData.Create<float>("w", [2, 3], [1, 2, 3, 4, 5, 6]);
        var wt = TensorData.Create<float>("wt", [3, 2], [1, 4, 2, 5, 3, 6]);
        var a = TensorData.Create<float>("a", [1, 2], [1, 2]);          // [r=1, in=2]
        var b = TensorData.Create<float>("b", [3, 1], [1, 0, -1]);      // [out=3, r=1]
        // B·A = [[1, 2], [0, 0], [-1, -2]] ([out, in]); scale 0.5.
        Assert.Equal([1.5f, 2, 2.5f, 5, 5, 5], LoraMerge.MergedWeight(w, a, b, 0.5, transposed: false).AsSpan<float>().ToArray());
        Assert.Equal([1.5f, 5, 2, 5, 2.5f, 5], LoraMerge.MergedWeight(wt, a, b, 0.5, transposed: true).AsSpan<float>().ToArray());
    }

    // ---- gradients ----------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData("llama_tiny_unfolded")]
    [InlineData("llama_tiny_folded")]
    [InlineData("gpt2_tiny_unfolded")]
    public void AdapterGradientsMatchFiniteDifferences(string name)
    {
        var model = Load(name);
        var pass = new LoraPass(new LoraOptions { Rank = 4, Alpha = 8, Seed = 3 });
        PassRunner.Run(model, pass);
        SetRandomB(model, pass.Adapters, seed: 17, magnitude: 0.2);
        var loss = LossGraphs.AppendCrossEntropy(model, "logits");
        var extra = BatchInputs(name);
        var backward = BackwardBuilder.Build(model, loss.Name, pass.TrainableParameters);
        Assert.Equal(pass.TrainableParameters, backward.Parameters);
        // The frozen weights stay initializers of the training graph; only A and B are inputs with gradients.
        var tg = backward.Model.Graph;
        Assert.All(pass.Adapters, a => Assert.NotNull(tg.FindInitializer(a.WeightName)));
        Assert.All(pass.Adapters, a => Assert.Null(tg.FindInitializer(a.AName)));
        Assert.Equal(1 + 1 + pass.TrainableParameters.Count, tg.Outputs.Count); // loss, logits, one gradient per A and B
        var analytic = RunGradients(backward, extra);
        Assert.All(pass.TrainableParameters, p => Assert.True(analytic[p].Any(v => v != 0), $"{p}: zero gradient"));
        foreach (var p in pass.TrainableParameters)
            output.WriteLine($"{p}: max |grad| {analytic[p].Max(Math.Abs):e2}");

        // Central differences of the float32 forward loss, on the three largest elements of the three A and three B
        // matrices with the largest gradients (smaller gradients drown in float32 rounding at this step).
        const double eps = 1e-2, tolerance = 2e-2;
        var forward = Model.FromBytes(model.ToBytes());
        foreach (var o in forward.Graph.Outputs.ToList()) if (o.Name != loss.Name) forward.Graph.RemoveOutput(o);
        var buffers = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var p in pass.TrainableParameters)
            buffers[p] = forward.Graph.PromoteInitializerToInput(forward.Graph.FindInitializer(p)!).AsSpan<float>().ToArray();
        using var session = SessionFactory.Create(forward);
        using var bag = new OrtValueBag();
        var names = session.InputMetadata.Keys.ToList();
        var values = names.Select(n => bag.Add(n, buffers.TryGetValue(n, out var buf)
            ? OrtValues.Wrap(buf, backward.InitialValues[n].Dims)
            : OrtValues.FromTensorData(extra[n]))).ToList();
        double Loss()
        {
            using var ro = new RunOptions();
            using var r = session.Run(ro, names, values, [loss.Name]);
            return r[0].GetTensorDataAsSpan<float>()[0];
        }
        var picked = pass.Adapters.Select(a => a.AName).OrderByDescending(p => analytic[p].Max(Math.Abs)).Take(3)
            .Concat(pass.Adapters.Select(a => a.BName).OrderByDescending(p => analytic[p].Max(Math.Abs)).Take(3));
        int checkedCount = 0;
        foreach (var p in picked)
        {
            var g = analytic[p];
            foreach (int i in Enumerable.Range(0, g.Length).OrderByDescending(i => Math.Abs(g[i])).Take(3))
            {
                var buf = buffers[p];
                float saved = buf[i];
                buf[i] = (float)(saved + eps);
                double hi = buf[i], up = Loss();
                buf[i] = (float)(saved - eps);
                double lo = buf[i], down = Loss();
                buf[i] = saved;
                double numeric = (up - down) / (hi - lo);
                double err = Math.Abs(numeric - g[i]) / Math.Max(Math.Abs(numeric), 1e-3);
                output.WriteLine($"{p}[{i}]: analytic {g[i]:e4} numeric {numeric:e4} error {err:e2}");
                Assert.True(err <= tolerance, $"{name}: {p}[{i}]: analytic {g[i]:r} vs numeric {numeric:r}, error {err:e3} > {tolerance}");
                checkedCount++;
            }
        }
        Assert.Equal(18, checkedCount);
    }

    [Theory]
    [InlineData("llama_tiny_folded")]
    [InlineData("gpt2_tiny_unfolded")]
    public void WithZeroBTheGradientOfAIsExactlyZeroAndThatOfBIsNot(string name)
    {
        var model = Load(name);
        var pass = new LoraPass(new LoraOptions { Rank = 4, Seed = 5 });
        PassRunner.Run(model, pass);
        var loss = LossGraphs.AppendCrossEntropy(model, "logits");
        var backward = BackwardBuilder.Build(model, loss.Name, pass.TrainableParameters);
        var grads = RunGradients(backward, BatchInputs(name));
        foreach (var a in pass.Adapters)
        {
            Assert.All(grads[a.AName], v => Assert.Equal(0.0, v));
            Assert.True(grads[a.BName].Max(Math.Abs) > 1e-6, $"{a.BName}: the gradient of B is zero");
        }
    }

    // ---- errors -------------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData("llama_tiny_folded", "/model/layers.0/self_attn/q_proj/MatMul", "onnx::MatMul_580")]
    [InlineData("llama_tiny_unfolded", "/model/layers.1/mlp/down_proj/MatMul", "model.layers.1.mlp.down_proj.weight")]
    public void APatternThatMatchesNothingListsTheCandidates(string name, string node, string weight)
    {
        var model = Load(name);
        int nodes = model.Graph.Nodes.Count, initializers = model.Graph.Initializers.Count();
        var pass = new LoraPass(new LoraOptions { Pattern = "no_such_module" });
        var e = Assert.Throws<OnnxFormatException>(() => PassRunner.Run(model, pass));
        output.WriteLine(e.Message);
        Assert.Contains("no_such_module", e.Message, StringComparison.Ordinal);
        Assert.Contains($"'{node}' (weight '{weight}')", e.Message, StringComparison.Ordinal);
        Assert.Contains("/lm_head/MatMul", e.Message, StringComparison.Ordinal);
        Assert.Contains("15 candidate", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("/self_attn/MatMul'", e.Message, StringComparison.Ordinal); // attention products are not candidates
        Assert.Equal(nodes, model.Graph.Nodes.Count);
        Assert.Equal(initializers, model.Graph.Initializers.Count());
    }

    [Theory]
    [InlineData("Rank", 0, 16.0, null)]
    [InlineData("Rank", -3, 16.0, null)]
    [InlineData("Alpha", 8, 0.0, null)]
    [InlineData("Alpha", 8, -1.0, null)]
    [InlineData("Alpha", 8, double.NaN, null)]
    [InlineData("Alpha", 8, double.PositiveInfinity, null)]
    [InlineData("Pattern", 8, 16.0, "(q_proj")]
    [InlineData("Pattern", 8, 16.0, "")]
    public void InvalidOptionsThrowNamingTheOption(string option, int rank, double alpha, string? pattern)
    {
        var options = new LoraOptions { Rank = rank, Alpha = alpha, Pattern = pattern ?? LoraOptions.DefaultPattern };
        var e = Assert.Throws<OptionException>(() => new LoraPass(options));
        Assert.Equal(option, e.ParamName);
        Assert.Contains(option switch { "Rank" => "--lora ", "Alpha" => "--lora-alpha", _ => "--lora-pattern" }, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PreconditionsRefuseOldOpsetsAndModelsThatAlreadyHaveAdapters()
    {
        var b = GraphBuilder.ForNewModel(12);
        var x = b.Input("x", ElementType.Float, 2, 4);
        using (b.Scope("q_proj")) b.Output(b.MatMul(x, b.Parameter(RandomTensor("q_proj.weight", [4, 4], new Random(1), 1))), "y");
        var e = Assert.Throws<OnnxFormatException>(() => PassRunner.Run(b.Model!, new LoraPass()));
        Assert.Contains("opset 12", e.Message, StringComparison.Ordinal);

        var model = Load("llama_tiny_folded");
        PassRunner.Run(model, new LoraPass(new LoraOptions { Rank = 2 }));
        e = Assert.Throws<OnnxFormatException>(() => PassRunner.Run(model, new LoraPass(new LoraOptions { Rank = 2 })));
        Assert.Contains("already has LoRA adapters", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InitializationIsDeterministicForASeed()
    {
        static byte[] FirstA(int seed)
        {
            var m = Load("gpt2_tiny_folded");
            var p = new LoraPass(new LoraOptions { Rank = 4, Seed = seed });
            PassRunner.Run(m, p);
            return m.Graph.FindInitializer(p.Adapters[0].AName)!.Initializer!.Bytes.ToArray();
        }
        Assert.Equal(FirstA(42), FirstA(42));
        Assert.NotEqual(FirstA(42), FirstA(43));
    }

    // ---- helpers ------------------------------------------------------------------------------------------------------

    private static Model Load(string name) => Model.Load(Repo.Fixture("models", name + ".onnx"));

    private static (long[] Ids, long[] Shape) InputIds(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Repo.Fixture("models", name + ".expected.json")));
        var rows = doc.RootElement.GetProperty("inputIds").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetInt64()).ToArray()).ToList();
        return ([.. rows.SelectMany(r => r)], [rows.Count, rows[0].Length]);
    }

    private static Dictionary<string, TensorData> BatchInputs(string name)
    {
        var batch = TokenBatch.Load(Repo.Fixture("models", name + ".batch.json"));
        long[] shape = [batch.BatchSize, batch.SequenceLength];
        return new Dictionary<string, TensorData>(StringComparer.Ordinal)
        {
            ["input_ids"] = TensorData.Create<long>("input_ids", shape, batch.InputIds),
            [LossNames.Labels] = TensorData.Create<long>(LossNames.Labels, shape, batch.Labels),
        };
    }

    private static float[] Logits(Model model, long[] ids, long[] shape) =>
        RunFloat(model, "logits", ("input_ids", TensorData.Create<long>("input_ids", shape, ids)));

    private static float[] RunFloat(Model model, string outputName, params (string Name, TensorData Data)[] inputs)
    {
        using var session = SessionFactory.Create(model);
        using var bag = new OrtValueBag();
        var values = inputs.Select(i => bag.Add(i.Name, OrtValues.FromTensorData(i.Data))).ToList();
        using var ro = new RunOptions();
        using var results = session.Run(ro, [.. inputs.Select(i => i.Name)], values, [outputName]);
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }

    private static Dictionary<string, double[]> RunGradients(BackwardResult backward, IReadOnlyDictionary<string, TensorData> extra)
    {
        using var session = SessionFactory.Create(backward.Model);
        using var bag = new OrtValueBag();
        var names = session.InputMetadata.Keys.ToList();
        var values = names.Select(n => bag.Add(n, OrtValues.FromTensorData(backward.InitialValues.TryGetValue(n, out var d) ? d : extra[n]))).ToList();
        var outputs = backward.Parameters.Select(BackwardResult.GradientName).ToArray();
        using var ro = new RunOptions();
        using var results = session.Run(ro, names, values, outputs);
        return backward.Parameters.Select((p, i) => (p, i)).ToDictionary(t => t.p, t => GradientCheck.ReadDoubles(results[t.i]));
    }

    private static TensorData RandomTensor(string name, long[] dims, Random rng, double magnitude)
    {
        var values = new float[dims.Aggregate(1L, (p, d) => p * d)];
        for (int i = 0; i < values.Length; i++) values[i] = (float)((rng.NextDouble() * 2 - 1) * magnitude);
        return TensorData.Create<float>(name, dims, values);
    }

    private static void SetRandomB(Model model, IEnumerable<LoraAdapter> adapters, int seed, double magnitude)
    {
        var rng = new Random(seed);
        foreach (var a in adapters)
            model.Graph.SetInitializer(model.Graph.FindInitializer(a.BName)!, RandomTensor(a.BName, [a.Out, a.Rank], rng, magnitude));
    }

    private static double MaxAbsDiff(float[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        double m = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs((double)a[i] - b[i]);
            if (double.IsNaN(d)) return double.PositiveInfinity;
            m = Math.Max(m, d);
        }
        return m;
    }

    private static bool SameValues(float[] a, float[] b) => a.Length == b.Length && a.Zip(b).All(p => p.First == p.Second);

    /// <summary>
    /// The merged model is the original graph: the same nodes (protobuf-equal: names, ops, inputs, outputs, attributes) in
    /// the same order, the same graph inputs and outputs, the same initializers in the same order, bit-identical except for
    /// the adapted weights, and nothing of the adapters left.
    /// </summary>
    private static void AssertSameGraph(Model original, Model merged, IReadOnlyList<LoraAdapter> adapters)
    {
        var og = original.Graph;
        var mg = merged.Graph;
        Assert.Equal(og.Nodes.GroupBy(n => n.OpType).ToDictionary(x => x.Key, x => x.Count()), mg.Nodes.GroupBy(n => n.OpType).ToDictionary(x => x.Key, x => x.Count()));
        Assert.Equal(og.Nodes.Select(n => n.Name), mg.Nodes.Select(n => n.Name));
        Assert.Equal(og.Nodes.Select(n => n.ToString()), mg.Nodes.Select(n => n.ToString()));
        var op = original.ToProto().Graph;
        var mp = merged.ToProto().Graph;
        Assert.Equal(op.Node, mp.Node);
        Assert.Equal(op.Input, mp.Input);
        Assert.Equal(op.Output, mp.Output);
        Assert.Equal(og.Initializers.Select(v => v.Name), mg.Initializers.Select(v => v.Name));
        var adapted = adapters.Select(a => a.WeightName).ToHashSet(StringComparer.Ordinal);
        foreach (var v in og.Initializers)
        {
            var before = v.Initializer!;
            var after = mg.FindInitializer(v.Name)!.Initializer!;
            Assert.Equal(before.ElementType, after.ElementType);
            Assert.Equal(before.Dims, after.Dims);
            bool same = before.Bytes.SequenceEqual(after.Bytes);
            Assert.True(adapted.Contains(v.Name) ? !same : same, $"initializer '{v.Name}': {(same ? "unchanged" : "changed")}");
        }
        Assert.DoesNotContain(mg.Values, v => v.Name.Contains("/lora/", StringComparison.Ordinal) || IsAdapterName(v.Name));
    }

    private static bool IsAdapterName(string name) =>
        name.EndsWith(".lora_A", StringComparison.Ordinal) || name.EndsWith(".lora_B", StringComparison.Ordinal) || name.EndsWith("_base", StringComparison.Ordinal);

    /// <summary>
    /// A small decoder written the way <c>LlamaGraph</c> writes one: Hub weight names, projections as
    /// MatMul(x, Transpose(W [out, in])) under <c>/model/layers.N/self_attn/q_proj</c> scopes, a SwiGLU MLP and an LM head
    /// tied to the embedding table. The attention is a stand-in (no softmax), since only the projections matter here.
    /// </summary>
    private static Model BuilderStyleDecoder(int layers, int d = 8, int kv = 4, int f = 12, int vocab = 10)
    {
        var rng = new Random(99);
        var b = GraphBuilder.ForNewModel(17);
        var ids = b.Input("input_ids", ElementType.Int64, Dim.Symbol("batch"), Dim.Symbol("sequence"));
        var embed = b.Parameter(RandomTensor("model.embed_tokens.weight", [vocab, d], rng, 1));
        Value Linear(Value x, string weight, int outDim, int inDim, string scope)
        {
            using var _ = b.Scope(scope);
            return b.MatMul(x, b.Transpose(b.Parameter(RandomTensor(weight, [outDim, inDim], rng, 0.3)), 1, 0));
        }
        Value h;
        using (b.Scope("model"))
        {
            using (b.Scope("embed_tokens")) h = b.Gather(embed, ids);
            for (int l = 0; l < layers; l++)
            {
                using var layer = b.Scope($"layers.{l}");
                string p = $"model.layers.{l}";
                using (b.Scope("self_attn"))
                {
                    var q = Linear(h, $"{p}.self_attn.q_proj.weight", d, d, "q_proj");
                    var k = Linear(h, $"{p}.self_attn.k_proj.weight", kv, d, "k_proj");
                    var v = Linear(h, $"{p}.self_attn.v_proj.weight", kv, d, "v_proj");
                    var mix = b.Mul(q, b.Sigmoid(b.Concat(-1, b.Add(k, v), b.Sub(k, v))));
                    h = b.Add(h, Linear(mix, $"{p}.self_attn.o_proj.weight", d, d, "o_proj"));
                }
                using (b.Scope("mlp"))
                {
                    var gate = Linear(h, $"{p}.mlp.gate_proj.weight", f, d, "gate_proj");
                    var up = Linear(h, $"{p}.mlp.up_proj.weight", f, d, "up_proj");
                    h = b.Add(h, Linear(b.Mul(b.Mul(gate, b.Sigmoid(gate)), up), $"{p}.mlp.down_proj.weight", d, f, "down_proj"));
                }
            }
        }
        Value logits;
        using (b.Scope("lm_head")) logits = b.MatMul(h, b.Transpose(embed, 1, 0));
        b.Output(logits, "logits");
        return b.Model!;
    }
}
