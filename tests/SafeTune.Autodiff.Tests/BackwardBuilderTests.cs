using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using SafeTune.Autodiff.Losses;
using SafeTune.Autodiff.Rules;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Runtime.Training;
using SafeTune.TestSupport;
using Xunit.Abstractions;
using Attr = SafeTune.Onnx.Attribute;

namespace SafeTune.Autodiff.Tests;

public sealed class BackwardBuilderTests(ITestOutputHelper output)
{
    public static TheoryData<string> Fixtures => new() { "gpt2_tiny_folded", "gpt2_tiny_unfolded", "llama_tiny_folded", "llama_tiny_unfolded" };

    public static TheoryData<string, EmbeddingGradient> FixturesAndModes
    {
        get
        {
            var data = new TheoryData<string, EmbeddingGradient>();
            foreach (var name in new[] { "gpt2_tiny_folded", "gpt2_tiny_unfolded", "llama_tiny_folded", "llama_tiny_unfolded" })
                foreach (var mode in new[] { EmbeddingGradient.ScatterAdd, EmbeddingGradient.OneHotMatMul })
                    data.Add(name, mode);
            return data;
        }
    }

    private static string ModelPath(string name) => Repo.Fixture("models", name + ".onnx");

    private static List<string> FloatInitializers(Model m) =>
        [.. m.Graph.Initializers.Where(v => v.Initializer!.ElementType.IsFloatingPoint()).Select(v => v.Name)];

    // ---- the torch fixtures ------------------------------------------------------------------------------------------

    [Theory, MemberData(nameof(Fixtures))]
    public void FixtureBackwardGraphsUseOnlyValidDefaultDomainOps(string name)
    {
        foreach (var mode in new[] { EmbeddingGradient.ScatterAdd, EmbeddingGradient.OneHotMatMul })
        {
            var model = Model.Load(ModelPath(name));
            var loss = LossGraphs.AppendCrossEntropy(model, "logits");
            var parameters = FloatInitializers(model);
            var r = BackwardBuilder.Build(model, loss.Name, parameters, new BackwardOptions { EmbeddingGradient = mode });

            Assert.Equal(17, r.Model.DefaultOpset);
            Assert.True(r.Model.Opsets.Keys.All(d => d is "" or "ai.onnx"), $"{name} ({mode}): opset imports {string.Join(", ", r.Model.Opsets.Keys)}");
            var problems = OpsetConformance.Problems(r.Model);
            Assert.True(problems.Count == 0, $"{name} ({mode}):{Environment.NewLine}{string.Join(Environment.NewLine, problems)}");
            foreach (var p in parameters)
                Assert.Contains(r.Model.Graph.Outputs, o => o.Name == BackwardResult.GradientName(p));
            Assert.Equal(parameters, r.Parameters);
            var ops = r.Model.Graph.Nodes.Select(n => n.OpType).ToHashSet();
            if (mode == EmbeddingGradient.ScatterAdd) Assert.Contains("ScatterND", ops);
            else Assert.DoesNotContain("ScatterND", ops);
        }
    }

    [Theory, MemberData(nameof(FixturesAndModes))]
    public void GradientEvaluatorMatchesPyTorch(string name, EmbeddingGradient mode)
    {
        var model = Model.Load(ModelPath(name));
        var batch = TokenBatch.Load(Repo.Fixture("models", name + ".batch.json"));
        var result = GradientEvaluator.Run(model, batch, options: new BackwardOptions { EmbeddingGradient = mode });
        var (tensors, metadata) = SafeTensors.Read(Repo.Fixture("models", name + ".grads.safetensors"));
        double torchLoss = double.Parse(metadata["loss"], CultureInfo.InvariantCulture);
        output.WriteLine($"{name} ({mode}): loss {result.Loss:r} vs torch {torchLoss:r}, {result.Milliseconds:f0} ms");
        Assert.True(Math.Abs(result.Loss - torchLoss) <= 1e-4 * Math.Abs(torchLoss), $"{name} ({mode}): loss {result.Loss:r} vs torch {torchLoss:r}");

        var expected = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), result.Gradients.Select(g => g.Name).Order(StringComparer.Ordinal));
        var failures = new List<string>();
        double worst = 0;
        foreach (var g in result.Gradients)
        {
            var torch = expected[g.Name];
            Assert.Equal(torch.Dims, g.Dims);
            var a = g.ToDoubles();
            var t = torch.ToDoubles();
            double maxDiff = 0, maxTorch = 0;
            for (int i = 0; i < a.Length; i++)
            {
                double d = Math.Abs(a[i] - t[i]);
                if (double.IsNaN(d)) d = double.PositiveInfinity;
                maxDiff = Math.Max(maxDiff, d);
                maxTorch = Math.Max(maxTorch, Math.Abs(t[i]));
            }
            double rel = maxDiff / Math.Max(maxTorch, 1e-30);
            worst = Math.Max(worst, rel);
            if (!(rel <= 1e-3)) failures.Add($"{g.Name} {string.Join("x", g.Dims)}: max|diff| {maxDiff:e3} / max|torch| {maxTorch:e3} = {rel:e3}");
        }
        output.WriteLine($"worst max|diff|/max|torch| = {worst:e3}");
        Assert.True(failures.Count == 0, $"{name} ({mode}) differs from PyTorch:{Environment.NewLine}{string.Join(Environment.NewLine, failures)}");
    }

    [Theory]
    [InlineData("llama_tiny_folded")]
    [InlineData("gpt2_tiny_unfolded")]
    public void AllLabelsIgnoredGivesZeroLossAndZeroGradients(string name)
    {
        var model = Model.Load(ModelPath(name));
        var batch = TokenBatch.Load(Repo.Fixture("models", name + ".batch.json"));
        var ignored = batch with { Labels = [.. Enumerable.Repeat(LossNames.IgnoreIndex, batch.Labels.Length)] };
        var result = GradientEvaluator.Run(model, ignored);
        Assert.Equal(0f, result.Loss);
        foreach (var g in result.Gradients)
        {
            var v = g.ToDoubles();
            Assert.False(v.Any(double.IsNaN), $"{g.Name}: NaN in the gradient");
            int nonZero = Array.FindIndex(v, x => x != 0);
            Assert.True(nonZero < 0, nonZero < 0 ? "" : $"{g.Name}: element {nonZero} of the gradient is {v[nonZero]:r}, not 0");
        }
    }

    [Fact]
    public void TokenIdOutsideTheVocabularyIsRefusedWithItsPosition()
    {
        var model = Model.Load(ModelPath("llama_tiny_folded"));
        var batch = TokenBatch.Load(Repo.Fixture("models", "llama_tiny_folded.batch.json"));
        var ids = batch.InputIds.ToArray();
        ids[1 * batch.SequenceLength + 3] = 96; // vocab is 96
        var e = Assert.Throws<InvalidDataException>(() => GradientEvaluator.Run(model, batch with { InputIds = ids }));
        Assert.Contains("input_ids[1][3]", e.Message);
        Assert.Contains("96", e.Message);

        ids = batch.InputIds.ToArray();
        ids[2] = -1;
        e = Assert.Throws<InvalidDataException>(() => GradientEvaluator.Run(model, batch with { InputIds = ids }));
        Assert.Contains("input_ids[0][2]", e.Message);
        Assert.Contains("-1", e.Message);

        var labels = batch.Labels.ToArray();
        labels[4] = 1000;
        e = Assert.Throws<InvalidDataException>(() => GradientEvaluator.Run(model, batch with { Labels = labels }));
        Assert.Contains("labels[0][4]", e.Message);
        Assert.Contains("1000", e.Message);
    }

    [Fact]
    public void LabelsOfAnotherShapeAreRefused()
    {
        using var dir = new TempDir();
        var path = dir.File("batch.json");
        File.WriteAllText(path, """{"input_ids": [[1, 2, 3], [4, 5, 6]], "labels": [[2, 3], [5, 6]]}""");
        var e = Assert.Throws<InvalidDataException>(() => TokenBatch.Load(path));
        Assert.Contains("labels", e.Message);
        Assert.Contains("shape", e.Message);
        Assert.Contains("[2, 2]", e.Message);
        Assert.Contains("[2, 3]", e.Message);

        File.WriteAllText(path, """{"input_ids": [[1, 2, 3], [4, 5, 6]], "labels": [[2, 3, -100]]}""");
        e = Assert.Throws<InvalidDataException>(() => TokenBatch.Load(path));
        Assert.Contains("labels", e.Message);
        Assert.Contains("[1, 3]", e.Message);
    }

    // ---- pruning -----------------------------------------------------------------------------------------------------

    private static Model PruningModel(bool withAux)
    {
        var b = GraphBuilder.ForNewModel(17);
        var p1 = b.Parameter(TensorData.Create<double>("p1", [3], [0.3, -0.7, 1.1]));
        using (b.Scope("main"))
        {
            var y = b.Sin(b.Mul(p1, b.Constant(TensorData.Create<double>("c", [3], [1.5, -2.0, 0.5]))));
            b.Output(b.Op("ReduceSum", [y], Attr.Of("keepdims", 0L)), "loss");
        }
        if (withAux)
        {
            var p2 = b.Parameter(TensorData.Create<double>("p2", [3], [0.2, 0.4, -0.6]));
            using (b.Scope("aux")) b.Output(b.Cos(b.Exp(b.Mul(p2, p1))), "aux");
        }
        return b.Model!;
    }

    [Fact]
    public void ParameterNotAffectingTheLossGetsZerosAndItsBranchGetsNoGradientNodes()
    {
        var withAux = PruningModel(withAux: true);
        var without = PruningModel(withAux: false);
        var rA = BackwardBuilder.Build(withAux, "loss", ["p1", "p2"]);
        var rB = BackwardBuilder.Build(without, "loss", ["p1"]);

        var forwardNamesA = withAux.Graph.Nodes.Select(n => n.Name).ToHashSet();
        var gradNodesA = rA.Model.Graph.Nodes.Where(n => !forwardNamesA.Contains(n.Name)).ToList();
        var forwardNamesB = without.Graph.Nodes.Select(n => n.Name).ToHashSet();
        var gradNodesB = rB.Model.Graph.Nodes.Where(n => !forwardNamesB.Contains(n.Name)).ToList();

        // Nothing differentiates the aux branch: no gradient node reads its values or is named after its nodes.
        var auxValues = rA.Model.Graph.Nodes.Where(n => n.Name.StartsWith("/aux/", StringComparison.Ordinal)).SelectMany(n => n.Outputs).ToHashSet();
        Assert.Equal(3, auxValues.Count);
        Assert.DoesNotContain(gradNodesA, n => n.Inputs.Any(i => i is not null && auxValues.Contains(i)));
        Assert.DoesNotContain(gradNodesA, n => n.Name.Contains("aux/", StringComparison.Ordinal));

        // p2's gradient is a zero fill of its shape: the only extra nodes compared with the model without the branch.
        var zeroNodes = Ancestors(rA.Model, BackwardResult.GradientName("p2")).Where(n => !forwardNamesA.Contains(n.Name)).ToList();
        Assert.All(zeroNodes, n => Assert.Contains(n.OpType, new[] { "Shape", "ConstantOfShape", "Identity" }));
        Assert.Equal(gradNodesB.Count + zeroNodes.Count, gradNodesA.Count);
        Assert.Equal(gradNodesB.Select(n => n.OpType).Order(), gradNodesA.Except(zeroNodes).Select(n => n.OpType).Order());

        var report = GradientCheck.CheckModel("pruning", "aux branch", 0, withAux, "loss", ["p1", "p2"],
            new Dictionary<string, TensorData>(), null, 1e-6, 1e-6);
        Assert.All(report.Gradients["p2"], v => Assert.Equal(0.0, v));
        Assert.Contains(report.Gradients["p1"], v => v != 0);
    }

    [Fact]
    public void ParameterReachingTheLossOnlyThroughShapeGetsZeros()
    {
        var b = GraphBuilder.ForNewModel(17);
        var p1 = b.Parameter(TensorData.Create<double>("p1", [2, 3], [0.3, -0.7, 1.1, 0.2, 0.5, -0.9]));
        var p3 = b.Parameter(TensorData.Create<double>("p3", [3, 2], [1, 2, 3, 4, 5, 6]));
        var y = b.Reshape(b.Exp(p1), b.ShapeOf(p3));
        b.Output(b.Op("ReduceSum", [b.Mul(y, b.Constant(TensorData.Create<double>("c", [3, 2], [1, -1, 2, -2, 3, -3])))], Attr.Of("keepdims", 0L)), "loss");
        var report = GradientCheck.CheckModel("pruning", "shape-only parameter", 0, b.Model!, "loss", ["p1", "p3"],
            new Dictionary<string, TensorData>(), null, 1e-6, 1e-6);
        Assert.All(report.Gradients["p3"], v => Assert.Equal(0.0, v));
    }

    private static List<Node> Ancestors(Model m, string value)
    {
        var seen = new HashSet<Node>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<Value>([m.Graph.GetValue(value)]);
        while (stack.TryPop(out var v))
            if (v.Producer is { } p && seen.Add(p))
                foreach (var i in p.Inputs) if (i is not null) stack.Push(i);
        return [.. seen];
    }

    // ---- fan-out and tied parameters ---------------------------------------------------------------------------------

    [Fact]
    public void FanOutIsAccumulatedWithSumNamedAfterTheValue()
    {
        var c = new FdCase("fan-out", "Sin output used by Mul and Exp", 5100, g =>
        {
            var v = g.B.Sin(g.Param("p", [2, 3]));
            g.B.Graph.RenameValue(v, "shared");
            return g.B.Add(g.B.Mul(v, g.Const([2, 3])), g.B.Exp(v));
        })
        {
            Inspect = r =>
            {
                var grad = r.Model.Graph.FindValue("shared_grad");
                Assert.True(grad is not null, "no value named 'shared_grad' in the backward graph");
                Assert.Equal("Sum", grad!.Producer?.OpType);
                Assert.Equal(2, grad.Producer!.Inputs.Count);
                Assert.Single(r.Model.Graph.Nodes, n => n.OpType == "Sum");
            },
        };
        output.WriteLine(GradientCheck.Run(c).Summary());
    }

    public static TheoryData<EmbeddingGradient> Modes => new() { EmbeddingGradient.ScatterAdd, EmbeddingGradient.OneHotMatMul };

    [Theory, MemberData(nameof(Modes))]
    public void TiedEmbeddingGetsOneAccumulatedGradientEqualToTheSumOfItsUses(EmbeddingGradient mode)
    {
        var options = new BackwardOptions { EmbeddingGradient = mode };
        long[] ids = [0, 3, 5, 3, 1, 0];
        // Tied: the same initializer feeds the embedding Gather and the output MatMul.
        var tied = new FdCase("tied embedding", $"Gather and MatMul of one initializer ({mode})", 5200, g =>
        {
            var w = g.Param("W", [6, 4]);
            var e = g.B.Gather(w, g.Int64s([2, 3], ids));
            return g.B.MatMul(g.B.Tanh(e), g.B.Transpose(w, 1, 0));
        })
        {
            Precision = ElementType.Float,
            Options = options,
            Inspect = r =>
            {
                Assert.Single(r.Model.Graph.Outputs, o => o.Name.StartsWith("W", StringComparison.Ordinal) && o.Name.EndsWith("_grad", StringComparison.Ordinal));
                var grad = r.Model.Graph.GetValue("W_grad");
                Assert.Equal("Sum", grad.Producer?.OpType);
                Assert.Equal(2, grad.Producer!.Inputs.Count);
            },
        };
        var report = GradientCheck.Run(tied);
        output.WriteLine(report.Summary());

        // Untied: two initializers with the same data, one per use; the tied gradient is their sum.
        var tiedModel = GradientCheck.BuildLossModel(tied);
        var w = tiedModel.Graph.FindInitializer("W")!.Initializer!;
        var untied = Model.FromBytes(tiedModel.ToBytes());
        var g2 = untied.Graph;
        var w2 = g2.AddInitializer(w.WithName("W_head"));
        var transpose = g2.Nodes.Single(n => n.OpType == "Transpose");
        transpose.SetInput(0, w2);
        var separate = GradientCheck.CheckModel("tied embedding", $"untied copy ({mode})", 5200, untied, "loss", ["W", "W_head"],
            new Dictionary<string, TensorData>(), options, 1e-2, 1e-2);
        var sum = separate.Gradients["W"].Zip(separate.Gradients["W_head"], (a, b) => a + b).ToArray();
        var tiedGrad = report.Gradients["W"];
        double scale = sum.Max(Math.Abs);
        for (int i = 0; i < sum.Length; i++)
            Assert.True(Math.Abs(tiedGrad[i] - sum[i]) <= 1e-5 * scale, $"element {i}: tied {tiedGrad[i]:r} vs sum of uses {sum[i]:r}");
    }

    // ---- parameters as inputs ----------------------------------------------------------------------------------------

    [Fact]
    public void ParametersBecomeGraphInputsAndInitialValuesHoldTheirData()
    {
        var b = GraphBuilder.ForNewModel(17);
        var data = TensorData.Create<double>("p", [2, 2], [1.5, -0.5, 0.25, 2.0]);
        var frozen = TensorData.Create<double>("frozen", [2], [3.0, 4.0]);
        var p = b.Parameter(data);
        var f = b.Parameter(frozen);
        b.Output(b.Op("ReduceSum", [b.Mul(b.Exp(p), f)], Attr.Of("keepdims", 0L)), "loss");
        var forward = b.Model!;

        var r = BackwardBuilder.Build(forward, "loss", ["p"]);
        var g = r.Model.Graph;
        Assert.Equal(new[] { "p" }, r.Parameters);
        Assert.Equal("loss", r.LossName);
        Assert.Null(g.FindInitializer("p"));
        var input = Assert.Single(g.Inputs, v => v.Name == "p");
        Assert.Equal(ElementType.Double, input.ElementType);
        Assert.Equal(new long[] { 2, 2 }, input.Shape!.Dims.Select(d => d.Value!.Value));
        Assert.NotNull(g.FindInitializer("frozen"));             // not a parameter: stays an initializer
        Assert.DoesNotContain(g.Inputs, v => v.Name == "frozen");
        Assert.Equal(data.Bytes.ToArray(), r.InitialValues["p"].Bytes.ToArray());
        Assert.Equal(data.Dims, r.InitialValues["p"].Dims);
        Assert.Single(r.InitialValues);
        Assert.Contains(g.Outputs, o => o.Name == "p_grad");
        // The forward model is not modified.
        Assert.NotNull(forward.Graph.FindInitializer("p"));
        Assert.DoesNotContain(forward.Graph.Inputs, v => v.Name == "p");
        Assert.DoesNotContain(forward.Graph.Outputs, o => o.Name == "p_grad");

        // Feeding other values than the initial ones changes the gradient: the parameter really is an input.
        using var session = SessionFactory.Create(r.Model);
        using var pv = OrtValues.Wrap(new double[] { 0, 0, 0, 0 }, 2, 2);
        using var results = session.Run(new RunOptions(), ["p"], [pv], ["p_grad"]);
        Assert.Equal(new[] { 3.0, 4.0, 3.0, 4.0 }, results[0].GetTensorDataAsSpan<double>().ToArray());
    }

    // ---- omitted optional inputs -------------------------------------------------------------------------------------

    [Fact]
    public void LayerNormalizationWithAnEmptyBiasInputMatchesTheTwoInputForm()
    {
        var rng = new Random(5400);
        var x = TensorData.Create<float>("X", [2, 3, 4], [.. Enumerable.Range(0, 24).Select(_ => (float)(rng.NextDouble() * 4 - 2))]);
        var scale = TensorData.Create<float>("scale", [4], [0.5f, 1.5f, -1f, 2f]);
        var r = TensorData.Create<float>("R", [2, 3, 4], [.. Enumerable.Range(0, 24).Select(_ => (float)(rng.NextDouble() * 2 - 1))]);
        BackwardResult Build(bool emptyBias)
        {
            var b = GraphBuilder.ForNewModel(17);
            var xv = b.Parameter(x);
            var sv = b.Parameter(scale);
            // GraphBuilder.LayerNormalization with a null bias writes an explicit empty third input ("").
            var y = emptyBias ? b.LayerNormalization(xv, sv, null) : b.Op("LayerNormalization", [xv, sv], Attr.Of("axis", -1L), Attr.Of("epsilon", 1e-5f));
            b.Output(b.Op("ReduceSum", [b.Mul(y, b.Constant(r))], Attr.Of("keepdims", 0L)), "loss");
            return BackwardBuilder.Build(b.Model!, "loss", ["X", "scale"]);
        }
        var empty = Build(emptyBias: true);
        // ONNX Runtime 1.31 crashes the process while optimizing a LayerNormalization with a trailing empty input, so
        // this is checked before any session sees the graph.
        Assert.DoesNotContain(empty.Model.Graph.Nodes, n => n.OpType == "LayerNormalization" && n.Inputs.Count == 3 && n.Inputs[2] is null);
        var plain = Build(emptyBias: false);

        double[] Run(BackwardResult result, string output)
        {
            using var session = SessionFactory.Create(result.Model);
            using var bag = new OrtValueBag();
            var names = session.InputMetadata.Keys.ToArray();
            var values = names.Select(n => bag.Add(n, OrtValues.FromTensorData(result.InitialValues[n]))).ToArray();
            using var res = session.Run(new RunOptions(), names, values, [output]);
            return GradientCheck.ReadDoubles(res[0]);
        }
        foreach (var grad in new[] { "X_grad", "scale_grad" })
        {
            var a = Run(empty, grad);
            var b = Run(plain, grad);
            Assert.Equal(b.Length, a.Length);
            for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 1e-6, $"{grad}[{i}]: {a[i]:r} vs {b[i]:r}");
        }
    }

    // ---- missing rules -----------------------------------------------------------------------------------------------

    private static (Model Model, string[] Nodes) SeriesOfUnregisteredOps()
    {
        var b = GraphBuilder.ForNewModel(17);
        var p = b.Parameter(TensorData.Create<float>("p", [2, 3], [0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f]));
        var n1 = b.NewNode("Softplus", [p]);
        var n2 = b.NewNode("Celu", [n1.Outputs[0]]);
        var n3 = b.NewNode("HardSigmoid", [n2.Outputs[0]]);
        b.Output(b.Op("ReduceSum", [n3.Outputs[0]], Attr.Of("keepdims", 0L)), "loss");
        return (b.Model!, [n1.Name, n2.Name, n3.Name]);
    }

    [Fact]
    public void UnregisteredOpsInParallelAreAllListed()
    {
        var b = GraphBuilder.ForNewModel(17);
        var p = b.Parameter(TensorData.Create<float>("p", [2, 3], [0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f]));
        var q = b.Parameter(TensorData.Create<float>("q", [2, 3], [0.5f, 0.2f, -0.3f, 0.1f, 0.5f, 0.7f]));
        var n1 = b.NewNode("Softplus", [p]);
        var n2 = b.NewNode("Celu", [q]);
        var n3 = b.NewNode("HardSigmoid", [p]);
        var y = b.Add(b.Add(n1.Outputs[0], n2.Outputs[0]), n3.Outputs[0]);
        b.Output(b.Op("ReduceSum", [y], Attr.Of("keepdims", 0L)), "loss");

        var e = Assert.Throws<MissingGradientException>(() => BackwardBuilder.Build(b.Model!, "loss", ["p", "q"]));
        foreach (var (op, node) in new[] { ("Softplus", n1.Name), ("Celu", n2.Name), ("HardSigmoid", n3.Name) })
        {
            Assert.Contains(op, e.Message);
            Assert.Contains(node, e.Message);
            Assert.Contains(e.Missing, m => m.OpType == op && m.Node == node);
        }
        Assert.Contains("'p'", e.Message);
        Assert.Contains("'q'", e.Message);
        Assert.Equal("q", e.Missing.Single(m => m.OpType == "Celu").Parameter);
    }

    [Fact]
    public void UnregisteredOpsInSeriesAreAllListed()
    {
        // Softplus -> Celu -> HardSigmoid: all three lie on the path from p to the loss.
        var (model, nodes) = SeriesOfUnregisteredOps();
        var e = Assert.Throws<MissingGradientException>(() => BackwardBuilder.Build(model, "loss", ["p"]));
        Assert.Contains("'p'", e.Message);
        foreach (var (op, node) in new[] { "Softplus", "Celu", "HardSigmoid" }.Zip(nodes))
        {
            Assert.True(e.Message.Contains(op, StringComparison.Ordinal) && e.Message.Contains(node, StringComparison.Ordinal),
                $"{op} node '{node}' is not listed: {e.Message}");
        }
    }

    [Fact]
    public void UnregisteredOpsOffTheGradientPathAreFine()
    {
        var b = GraphBuilder.ForNewModel(17);
        var p = b.Parameter(TensorData.Create<float>("p", [2, 3], [0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f]));
        // On a constant: no parameter upstream.
        var constant = b.NewNode("Celu", [b.Constant(TensorData.Create<float>("c", [2, 3], [1, 2, 3, -1, -2, -3]))]).Outputs[0];
        // From the parameter, but only to a graph output that is not the loss.
        b.Output(b.NewNode("Softplus", [p]).Outputs[0], "aux");
        // From the parameter into the loss, but only through ops without gradient (ArgMax, Shape).
        var argmax = b.Cast(b.Op("ArgMax", [b.NewNode("HardSigmoid", [p]).Outputs[0]], Attr.Of("axis", 1L), Attr.Of("keepdims", 1L)), ElementType.Float);
        var shaped = b.Reshape(b.Mul(p, constant), b.ShapeOf(b.NewNode("Softsign", [p]).Outputs[0]));
        var y = b.Add(b.Mul(shaped, argmax), b.Exp(p));
        b.Output(b.Op("ReduceSum", [y], Attr.Of("keepdims", 0L)), "loss");

        var report = GradientCheck.CheckModel("missing rules", "only off the gradient path", 0, b.Model!, "loss", ["p"],
            new Dictionary<string, TensorData>(), null, 1e-2, 1e-2);
        output.WriteLine(report.Summary());
    }

    // ---- opsets ------------------------------------------------------------------------------------------------------

    [Fact]
    public void OpsetBelow13IsRefusedNamingTheOpset()
    {
        var b = GraphBuilder.ForNewModel(12);
        var p = b.Parameter(TensorData.Create<float>("p", [3], [1, 2, 3]));
        b.Output(b.ReduceSum(b.Mul(p, p), [0], keepDims: false), "loss");
        var e = Assert.Throws<GradientException>(() => BackwardBuilder.Build(b.Model!, "loss", ["p"]));
        Assert.Contains("opset 12", e.Message);
    }

    [Fact]
    public void Opset13IsAccepted()
    {
        var c = new FdCase("opset 13", "MatMul, Softmax and ReduceSum at opset 13", 5300,
            g => g.B.ReduceSum(g.B.Softmax(g.B.MatMul(g.Param("A", [2, 3]), g.Param("B", [3, 4])), 1), [0], keepDims: false)) { Opset = 13 };
        var report = GradientCheck.Run(c);
        Assert.Empty(OpsetConformance.Problems(report.Backward.Model));
        output.WriteLine(report.Summary());
    }

    [Fact]
    public void UnknownLossOrParameterIsRefused()
    {
        var b = GraphBuilder.ForNewModel(17);
        var p = b.Parameter(TensorData.Create<float>("p", [3], [1, 2, 3]));
        var ids = b.Parameter(TensorData.Create<long>("ids", [1], [0]));
        b.Output(b.ReduceSum(b.Gather(p, ids), [0], keepDims: false), "loss");
        Assert.Contains("'nope'", Assert.Throws<GradientException>(() => BackwardBuilder.Build(b.Model!, "nope", ["p"])).Message);
        Assert.Contains("'q'", Assert.Throws<GradientException>(() => BackwardBuilder.Build(b.Model!, "loss", ["q"])).Message);
        Assert.Contains("'ids'", Assert.Throws<GradientException>(() => BackwardBuilder.Build(b.Model!, "loss", ["ids"])).Message);
    }
}

/// <summary>
/// Checks that every node of a model is a default-domain op that exists at the model's opset, in the form that opset
/// defines (e.g. ReduceSum's axes as an input from opset 13, the other reductions' axes as an attribute before 18).
/// </summary>
public static class OpsetConformance
{
    /// <summary>ai.onnx ops and the opset that introduced them (only those introduced after opset 1 are listed with a version).</summary>
    private static readonly Dictionary<string, int> Since = new(StringComparer.Ordinal)
    {
        ["Abs"] = 1, ["Acos"] = 7, ["Acosh"] = 9, ["Add"] = 1, ["And"] = 1, ["ArgMax"] = 1, ["ArgMin"] = 1, ["Asin"] = 7, ["Asinh"] = 9,
        ["Atan"] = 7, ["Atanh"] = 9, ["AveragePool"] = 1, ["BatchNormalization"] = 1, ["Bernoulli"] = 15, ["BitShift"] = 11,
        ["BlackmanWindow"] = 17, ["Cast"] = 1, ["CastLike"] = 15, ["Ceil"] = 1, ["Celu"] = 12, ["Clip"] = 1, ["Compress"] = 9,
        ["Concat"] = 1, ["ConcatFromSequence"] = 11, ["Constant"] = 1, ["ConstantOfShape"] = 9, ["Conv"] = 1, ["ConvInteger"] = 10,
        ["ConvTranspose"] = 1, ["Cos"] = 7, ["Cosh"] = 9, ["CumSum"] = 11, ["DFT"] = 17, ["DepthToSpace"] = 1, ["DequantizeLinear"] = 10,
        ["Det"] = 11, ["Div"] = 1, ["Dropout"] = 1, ["DynamicQuantizeLinear"] = 11, ["Einsum"] = 12, ["Elu"] = 1, ["Equal"] = 1,
        ["Erf"] = 9, ["Exp"] = 1, ["Expand"] = 8, ["EyeLike"] = 9, ["Flatten"] = 1, ["Floor"] = 1, ["GRU"] = 1, ["Gather"] = 1,
        ["GatherElements"] = 11, ["GatherND"] = 11, ["Gemm"] = 1, ["GlobalAveragePool"] = 1, ["GlobalLpPool"] = 1, ["GlobalMaxPool"] = 1,
        ["Greater"] = 1, ["GreaterOrEqual"] = 12, ["GridSample"] = 16, ["HammingWindow"] = 17, ["HannWindow"] = 17, ["HardSigmoid"] = 1,
        ["HardSwish"] = 14, ["Hardmax"] = 1, ["Identity"] = 1, ["If"] = 1, ["InstanceNormalization"] = 1, ["IsInf"] = 10, ["IsNaN"] = 9,
        ["LRN"] = 1, ["LSTM"] = 1, ["LayerNormalization"] = 17, ["LeakyRelu"] = 1, ["Less"] = 1, ["LessOrEqual"] = 12, ["Log"] = 1,
        ["LogSoftmax"] = 1, ["Loop"] = 1, ["LpNormalization"] = 1, ["LpPool"] = 1, ["MatMul"] = 1, ["MatMulInteger"] = 10, ["Max"] = 1,
        ["MaxPool"] = 1, ["MaxRoiPool"] = 1, ["MaxUnpool"] = 9, ["Mean"] = 1, ["MeanVarianceNormalization"] = 9, ["MelWeightMatrix"] = 17,
        ["Min"] = 1, ["Mod"] = 10, ["Mul"] = 1, ["Multinomial"] = 7, ["Neg"] = 1, ["NegativeLogLikelihoodLoss"] = 12,
        ["NonMaxSuppression"] = 10, ["NonZero"] = 9, ["Not"] = 1, ["OneHot"] = 9, ["Optional"] = 15, ["OptionalGetElement"] = 15,
        ["OptionalHasElement"] = 15, ["Or"] = 1, ["PRelu"] = 1, ["Pad"] = 1, ["Pow"] = 1, ["QLinearConv"] = 10, ["QLinearMatMul"] = 10,
        ["QuantizeLinear"] = 10, ["RNN"] = 1, ["RandomNormal"] = 1, ["RandomNormalLike"] = 1, ["RandomUniform"] = 1,
        ["RandomUniformLike"] = 1, ["Range"] = 11, ["Reciprocal"] = 1, ["ReduceL1"] = 1, ["ReduceL2"] = 1, ["ReduceLogSum"] = 1,
        ["ReduceLogSumExp"] = 1, ["ReduceMax"] = 1, ["ReduceMean"] = 1, ["ReduceMin"] = 1, ["ReduceProd"] = 1, ["ReduceSum"] = 1,
        ["ReduceSumSquare"] = 1, ["Relu"] = 1, ["Reshape"] = 1, ["Resize"] = 10, ["ReverseSequence"] = 10, ["RoiAlign"] = 10,
        ["Round"] = 11, ["STFT"] = 17, ["Scan"] = 8, ["ScatterElements"] = 11, ["ScatterND"] = 11, ["Selu"] = 1, ["SequenceAt"] = 11,
        ["SequenceConstruct"] = 11, ["SequenceEmpty"] = 11, ["SequenceErase"] = 11, ["SequenceInsert"] = 11, ["SequenceLength"] = 11,
        ["SequenceMap"] = 17, ["Shape"] = 1, ["Shrink"] = 9, ["Sigmoid"] = 1, ["Sign"] = 9, ["Sin"] = 7, ["Sinh"] = 9, ["Size"] = 1,
        ["Slice"] = 1, ["Softmax"] = 1, ["SoftmaxCrossEntropyLoss"] = 12, ["Softplus"] = 1, ["Softsign"] = 1, ["SpaceToDepth"] = 1,
        ["Split"] = 1, ["SplitToSequence"] = 11, ["Sqrt"] = 1, ["Squeeze"] = 1, ["StringNormalizer"] = 10, ["Sub"] = 1, ["Sum"] = 1,
        ["Tan"] = 7, ["Tanh"] = 1, ["TfIdfVectorizer"] = 9, ["ThresholdedRelu"] = 10, ["Tile"] = 1, ["TopK"] = 1, ["Transpose"] = 1,
        ["Trilu"] = 14, ["Unique"] = 11, ["Unsqueeze"] = 1, ["Where"] = 9, ["Xor"] = 1,
    };

    private static readonly HashSet<string> OtherReductions =
        ["ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSumSquare"];

    /// <summary>Every problem found, one line each naming the node.</summary>
    public static List<string> Problems(Model model)
    {
        long opset = model.DefaultOpset;
        var problems = new List<string>();
        foreach (var n in model.Graph.AllNodes())
        {
            void Bad(string why) => problems.Add($"{n.Describe()}: {why}");
            if (n.Domain is not ("" or "ai.onnx")) { Bad($"domain '{n.Domain}' is not ai.onnx"); continue; }
            if (!Since.TryGetValue(n.OpType, out var since)) { Bad($"{n.OpType} is not an ai.onnx op at opset {opset}"); continue; }
            if (since > opset) { Bad($"{n.OpType} needs opset {since}"); continue; }
            int inputs = n.Inputs.Count;
            bool Has(string attr) => n.Attributes.ContainsKey(attr);
            switch (n.OpType)
            {
                case "ReduceSum" when opset >= 13:
                    if (Has("axes")) Bad("ReduceSum takes axes as an input from opset 13, not an attribute");
                    if (inputs is < 1 or > 2) Bad($"ReduceSum has {inputs} inputs");
                    break;
                case var r when OtherReductions.Contains(r):
                    if (opset < 18 && inputs != 1) Bad($"{r} takes axes as an attribute before opset 18 ({inputs} inputs)");
                    if (opset >= 18 && Has("axes")) Bad($"{r} takes axes as an input from opset 18");
                    break;
                case "Squeeze" or "Unsqueeze" when opset >= 13:
                    if (Has("axes")) Bad($"{n.OpType} takes axes as an input from opset 13");
                    if (n.OpType == "Unsqueeze" && inputs != 2) Bad($"Unsqueeze needs its axes input ({inputs} inputs)");
                    break;
                case "Split":
                    if (opset >= 13 && Has("split")) Bad("Split takes sizes as an input from opset 13");
                    if (opset < 18 && Has("num_outputs")) Bad("num_outputs needs opset 18");
                    break;
                case "Slice" when opset >= 10:
                    if (Has("starts") || Has("ends") || Has("axes")) Bad("Slice takes starts/ends/axes as inputs from opset 10");
                    if (inputs < 3) Bad($"Slice has {inputs} inputs");
                    break;
                case "ScatterND" or "ScatterElements":
                    if (Has("reduction"))
                    {
                        var red = n.GetString("reduction", "none");
                        if (opset < 16) Bad("reduction needs opset 16");
                        else if (red is not ("none" or "add" or "mul") && opset < 18) Bad($"reduction '{red}' needs opset 18");
                    }
                    break;
                case "Pad" when opset >= 11:
                    if (Has("pads")) Bad("Pad takes pads as an input from opset 11");
                    break;
                case "Clip" when opset >= 11:
                    if (Has("min") || Has("max")) Bad("Clip takes min/max as inputs from opset 11");
                    break;
                case "Dropout" when opset >= 12:
                    if (Has("ratio")) Bad("Dropout takes ratio as an input from opset 12");
                    break;
                case "Softmax" or "LogSoftmax" or "Gather" or "GatherElements" or "Concat" or "Transpose" or "Cast" or "OneHot":
                    break;
            }
            if (n.OpType == "Cast" && (ElementType)n.GetInt("to", 0) == ElementType.Undefined) Bad("Cast without a valid 'to'");
            if (n.OpType == "Concat" && !Has("axis")) Bad("Concat without axis");
        }
        return problems;
    }
}
