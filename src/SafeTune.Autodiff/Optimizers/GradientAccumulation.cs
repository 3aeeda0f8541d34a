using SafeTune.Onnx;

namespace SafeTune.Autodiff.Optimizers;

/// <summary>
/// Makes a training graph accumulate its gradients in place: each <c>&lt;p&gt;_grad</c> output becomes
/// <c>&lt;p&gt;_grad_acc * grad_keep + weight * step_gradient</c>, where the accumulator is an input the caller binds to the
/// same buffer as the output. <c>grad_keep</c> = 0 starts a new accumulation (ORT training's lazy reset);
/// <c>grad_weight</c> blends gradient sets.
/// </summary>
public static class GradientAccumulation
{
    /// <summary>The accumulator input of a parameter.</summary>
    public static string AccumulatorName(string parameter) => parameter + "_grad_acc";

    /// <summary>The scalar input: 1 keeps the accumulated gradient, 0 resets it.</summary>
    public const string Keep = "grad_keep";

    /// <summary>The scalar input that weights this step's gradient.</summary>
    public const string Weight = "grad_weight";

    /// <summary>Rewrites the gradient outputs of <paramref name="result"/> in place.</summary>
    public static void Append(BackwardResult result)
    {
        var g = result.Model.Graph;
        var b = new GraphBuilder(g, result.Model.DefaultOpset);
        var keep = g.FindValue(Keep) ?? b.Input(Keep, ElementType.Float);
        var weight = g.FindValue(Weight) ?? b.Input(Weight, ElementType.Float);
        using var _ = b.Scope("accumulate");
        foreach (var p in result.Parameters)
        {
            var name = BackwardResult.GradientName(p);
            var step = g.GetValue(name);
            var type = step.ElementType;
            if (type != ElementType.Float)
                throw new GradientException($"parameter '{p}' is {type.OnnxName()}; in-place accumulation supports float32 parameters.");
            g.RenameValueUnique(step, name + "_step");
            var acc = b.Input(AccumulatorName(p), type, step.Shape?.Dims.ToArray() ?? []);
            if (step.Shape is null) acc.Shape = null;
            var sum = b.Add(b.Mul(acc, keep), b.Mul(step, weight));
            int index = g.Outputs.ToList().IndexOf(step);
            g.RenameValue(sum, name);
            sum.Shape = step.Shape;
            g.SetOutput(index, sum);
        }
    }
}
