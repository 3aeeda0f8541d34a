using SafeTune.Onnx;
using SafeTune.Onnx.Shapes;
using SafeTune.Runtime;
using SafeTune.Tests.Common;

namespace SafeTune.Runtime.Tests;

public sealed class GraphBuilderSessionTests
{
    private const int In = 4, Out = 3;

    private static readonly float[] W =
    [
        0.5f, -1.25f, 0.75f,
        1.5f, 0.25f, -0.5f,
        -0.75f, 2.0f, 0.125f,
        0.3f, -0.6f, 1.1f,
    ];
    private static readonly float[] B = [0.1f, -0.2f, 0.3f];
    private static readonly float[] Gamma = [1.0f, 0.5f, 2.0f, -1.5f];
    private static readonly float[] Beta = [0.0f, 0.25f, -0.5f, 1.0f];
    private const float Eps = 1e-5f;

    private static Model BuildModel(bool inferShapes)
    {
        var b = GraphBuilder.ForNewModel(opset: 17);
        var x = b.Input("x", ElementType.Float, Dim.Symbol("batch"), Dim.Of(In));
        var w = b.Parameter("W", W, In, Out);
        var bias = b.Parameter("b", B, Out);
        Value y, z;
        using (b.Scope("head")) y = b.Softmax(b.Add(b.MatMul(x, w), bias), -1);
        using (b.Scope("norm")) z = b.LayerNormalization(x, b.Parameter("gamma", Gamma, In), b.Parameter("beta", Beta, In), -1, Eps);
        b.Output(y, "y");
        b.Output(z, "z");
        if (inferShapes) ShapeInference.Run(b.Model!);
        return b.Model!;
    }

    private static float[] Input(int batch)
    {
        var r = new Random(42 + batch);
        return [.. Enumerable.Range(0, batch * In).Select(_ => (float)(r.NextDouble() * 4 - 2))];
    }

    private static (double[] y, double[] z) Reference(float[] x, int batch)
    {
        var y = new double[batch * Out];
        var z = new double[batch * In];
        for (int r = 0; r < batch; r++)
        {
            var logits = new double[Out];
            for (int j = 0; j < Out; j++)
            {
                double s = B[j];
                for (int k = 0; k < In; k++) s += (double)x[r * In + k] * W[k * Out + j];
                logits[j] = s;
            }
            double max = logits.Max();
            double sum = logits.Sum(l => Math.Exp(l - max));
            for (int j = 0; j < Out; j++) y[r * Out + j] = Math.Exp(logits[j] - max) / sum;

            double mean = 0;
            for (int k = 0; k < In; k++) mean += x[r * In + k];
            mean /= In;
            double variance = 0;
            for (int k = 0; k < In; k++) variance += (x[r * In + k] - mean) * (x[r * In + k] - mean);
            variance /= In;
            double inv = 1.0 / Math.Sqrt(variance + Eps);
            for (int k = 0; k < In; k++) z[r * In + k] = (x[r * In + k] - mean) * inv * Gamma[k] + Beta[k];
        }
        return (y, z);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void BuiltGraphMatchesHandComputationForSeveralBatchSizes(bool inferShapes)
    {
        var model = BuildModel(inferShapes);
        using var session = SessionFactory.Create(model);

        var xMeta = session.InputMetadata["x"];
        Assert.Equal([-1, In], xMeta.Dimensions);
        Assert.Equal("batch", xMeta.SymbolicDimensions[0]);
        Assert.Equal(["y", "z"], session.OutputNames);

        foreach (int batch in new[] { 1, 5 })
        {
            var x = Input(batch);
            using var xv = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(x, [batch, In]);
            using var options = new Microsoft.ML.OnnxRuntime.RunOptions();
            using var outputs = session.Run(options, ["x"], [xv], ["y", "z"]);
            Assert.Equal([batch, Out], outputs[0].GetTensorTypeAndShape().Shape);
            Assert.Equal([batch, In], outputs[1].GetTensorTypeAndShape().Shape);
            var y = outputs[0].GetTensorDataAsSpan<float>().ToArray();
            var z = outputs[1].GetTensorDataAsSpan<float>().ToArray();

            var (ry, rz) = Reference(x, batch);
            for (int i = 0; i < ry.Length; i++) Assert.True(Math.Abs(y[i] - ry[i]) <= 1e-5, $"y[{i}] = {y[i]}, expected {ry[i]} (batch {batch})");
            for (int i = 0; i < rz.Length; i++) Assert.True(Math.Abs(z[i] - rz[i]) <= 1e-5, $"z[{i}] = {z[i]}, expected {rz[i]} (batch {batch})");
            for (int r = 0; r < batch; r++) Assert.Equal(1.0, y.Skip(r * Out).Take(Out).Sum(v => (double)v), 5);
        }
    }

    [Fact]
    public void ShapeInferenceGivesSymbolicBatchOnOutputs()
    {
        var model = BuildModel(inferShapes: true);
        var y = model.Graph.GetValue("y");
        var z = model.Graph.GetValue("z");
        Assert.Equal(ElementType.Float, y.ElementType);
        Assert.Equal(ElementType.Float, z.ElementType);
        Assert.Equal("[batch, 3]", y.Shape?.ToString());
        Assert.Equal("[batch, 4]", z.Shape?.ToString());
        Assert.StartsWith("/head/", y.Producer!.Name, StringComparison.Ordinal);
        Assert.StartsWith("/norm/", z.Producer!.Name, StringComparison.Ordinal);
    }
}
