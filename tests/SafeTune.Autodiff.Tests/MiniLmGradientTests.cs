using Microsoft.ML.OnnxRuntime;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.TestSupport;
using Xunit.Abstractions;

namespace SafeTune.Autodiff.Tests;

/// <summary>
/// Gradients through a real pretrained graph: all-MiniLM-L6-v2 (PyTorch 1.10 export, opset 13, decomposed LayerNorm,
/// Erf GELU), for a pooled-embedding loss, checked by central differences on a sample of parameters.
/// </summary>
public class MiniLmGradientTests(ITestOutputHelper output)
{
    private const int Seed = 1234;

    [Fact]
    public void Pooled_embedding_gradients_match_finite_differences()
    {
        var model = MiniLm.Load();
        var b = new GraphBuilder(model.Graph, model.DefaultOpset);
        var rng = new Random(Seed);
        var r = Enumerable.Range(0, MiniLm.Width).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        Value loss;
        using (b.Scope("probe_loss"))
        {
            var pooled = b.ReduceMean(model.Graph.GetValue("last_hidden_state"), [1], keepDims: false); // (B, 384)
            loss = b.ReduceSum(b.Mul(pooled, b.Constant(TensorData.Vector("r", r))), [0, 1], keepDims: false);
        }
        b.Output(loss, "loss");
        var parameters = model.Graph.Initializers.Where(v => v.ElementType == ElementType.Float).Select(v => v.Name).ToList();
        var backward = BackwardBuilder.Build(model, "loss", parameters);
        Assert.All(backward.Model.Graph.Nodes, n => Assert.Equal("", n.Domain));

        using var session = SessionFactory.Create(backward.Model);
        long[] ids = [101, 2129, 2000, 5587, 1037, 4937, 2832, 102, 101, 2054, 2003, 1996, 3007, 102, 0, 0];
        long[] mask = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
        var values = backward.Parameters.ToDictionary(p => p, p => backward.InitialValues[p].AsSpan<float>().ToArray());
        float Evaluate(out Dictionary<string, float[]> grads, bool wantGrads)
        {
            using var bag = new OrtValueBag();
            var feeds = new Dictionary<string, OrtValue>
            {
                ["input_ids"] = bag.Add("input_ids", OrtValues.Wrap(ids, 2, 8)),
                ["attention_mask"] = bag.Add("attention_mask", OrtValues.Wrap(mask, 2, 8)),
                ["token_type_ids"] = bag.Add("token_type_ids", OrtValues.Wrap(new long[16], 2, 8)),
            };
            foreach (var p in backward.Parameters) feeds[p] = bag.Add(p, OrtValues.Wrap(values[p], backward.InitialValues[p].Dims));
            var names = wantGrads ? backward.Parameters.Select(BackwardResult.GradientName).Prepend("loss").ToArray() : ["loss"];
            using var results = session.Run(new RunOptions(), [.. feeds.Keys], [.. feeds.Values], names);
            grads = new Dictionary<string, float[]>();
            if (wantGrads)
                for (int i = 0; i < backward.Parameters.Count; i++) grads[backward.Parameters[i]] = results[i + 1].GetTensorDataAsSpan<float>().ToArray();
            return results[0].GetTensorDataAsSpan<float>()[0];
        }

        Evaluate(out var analytic, wantGrads: true);
        string[] sample =
        [
            "embeddings.word_embeddings.weight", "embeddings.LayerNorm.weight", "encoder.layer.0.attention.self.query.bias",
            "encoder.layer.2.intermediate.dense.bias", "encoder.layer.5.output.LayerNorm.bias",
            .. backward.Parameters.Where(p => backward.InitialValues[p].Dims.Length == 2 && p.All(char.IsDigit)).Take(2),
        ];
        const float eps = 1e-2f;
        const double tolerance = 3e-2;
        foreach (var p in sample)
        {
            var g = analytic[p];
            // The elements with the largest gradients: their finite differences are well above rounding noise.
            var picks = Enumerable.Range(0, g.Length).OrderByDescending(i => Math.Abs(g[i])).Take(3);
            foreach (int i in picks)
            {
                float saved = values[p][i];
                values[p][i] = saved + eps;
                float up = Evaluate(out _, false);
                values[p][i] = saved - eps;
                float down = Evaluate(out _, false);
                values[p][i] = saved;
                double numeric = (up - down) / (2.0 * eps);
                double err = Math.Abs(numeric - g[i]) / Math.Max(Math.Abs(numeric), 1e-3);
                output.WriteLine($"{p}[{i}]: analytic {g[i]:G6} numeric {numeric:G6} rel {err:E2}");
                Assert.True(err <= tolerance, $"MiniLM d loss / d {p}[{i}]: analytic {g[i]} vs numeric {numeric} (rel {err:E2} > {tolerance}, seed {Seed}, eps {eps})");
            }
        }
    }
}
