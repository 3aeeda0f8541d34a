using SafeTune.Onnx;

namespace SafeTune.Autodiff.Optimizers;

/// <summary>Names of the inputs and outputs of the optimizer graphs.</summary>
public static class OptimizerNames
{
    /// <summary>Flat parameter buffer [N].</summary>
    public const string Param = "param";
    /// <summary>Flat gradient buffer [N].</summary>
    public const string Grad = "grad";
    /// <summary>First moment (AdamW) or momentum buffer (SGD) [N].</summary>
    public const string State1 = "state1";
    /// <summary>Second moment (AdamW) [N].</summary>
    public const string State2 = "state2";
    /// <summary>Reference weights for the proximal pull [N].</summary>
    public const string Reference = "reference";
    /// <summary>Updated parameters.</summary>
    public const string ParamOut = "param_out";
    /// <summary>Updated first state.</summary>
    public const string State1Out = "state1_out";
    /// <summary>Updated second state.</summary>
    public const string State2Out = "state2_out";
    /// <summary>Scalar hyper-parameters, all float scalars fed every step.</summary>
    public const string LearningRate = "lr", Beta1 = "beta1", Beta2 = "beta2", Epsilon = "eps", WeightDecay = "weight_decay",
        BiasCorrection1 = "bias_correction1", BiasCorrection2 = "bias_correction2", GradScale = "grad_scale", Momentum = "momentum",
        Rho = "rho";
    /// <summary>The squared L2 norm of a buffer.</summary>
    public const string SquaredNorm = "squared_norm";
}

/// <summary>
/// Optimizers as ONNX graphs over one flat buffer of every trainable parameter, so the update runs on the same device as
/// training. The hyper-parameters are scalar inputs, so schedules change them every step without rebuilding.
/// Gradients are first multiplied by <c>grad_scale</c> (clipping, accumulation averaging); a proximal pull
/// <c>g += rho * (w - w_ref)</c> toward reference weights is optional.
/// </summary>
public static class OptimizerGraphs
{
    /// <summary>
    /// AdamW with PyTorch's semantics: <c>w *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
    /// w -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps)</c>, with bias corrections bc = 1 - b^t fed as inputs.
    /// </summary>
    public static Model AdamW(bool proximal = false)
    {
        var b = GraphBuilder.ForNewModel(17, "adamw");
        var (w, g) = Common(b, proximal);
        var m = b.Input(OptimizerNames.State1, ElementType.Float, Dim.Symbol("n"));
        var v = b.Input(OptimizerNames.State2, ElementType.Float, Dim.Symbol("n"));
        Value lr = Scalar(b, OptimizerNames.LearningRate), b1 = Scalar(b, OptimizerNames.Beta1), b2 = Scalar(b, OptimizerNames.Beta2),
            eps = Scalar(b, OptimizerNames.Epsilon), wd = Scalar(b, OptimizerNames.WeightDecay),
            bc1 = Scalar(b, OptimizerNames.BiasCorrection1), bc2 = Scalar(b, OptimizerNames.BiasCorrection2);
        var one = b.Scalar(1f);
        var decayed = b.Mul(w, b.Sub(one, b.Mul(lr, wd)));                           // w * (1 - lr*wd)
        var m1 = b.Add(b.Mul(m, b1), b.Mul(g, b.Sub(one, b1)));                       // b1*m + (1-b1)*g
        var v1 = b.Add(b.Mul(v, b2), b.Mul(b.Mul(g, g), b.Sub(one, b2)));             // b2*v + (1-b2)*g^2
        var denom = b.Add(b.Div(b.Sqrt(v1), b.Sqrt(bc2)), eps);
        var w1 = b.Sub(decayed, b.Mul(b.Div(m1, denom), b.Div(lr, bc1)));
        b.Output(b.Identity(w1), OptimizerNames.ParamOut);
        b.Output(b.Identity(m1), OptimizerNames.State1Out);
        b.Output(b.Identity(v1), OptimizerNames.State2Out);
        return b.Model!;
    }

    /// <summary>
    /// SGD with momentum and PyTorch's semantics: <c>g += wd*w; buf = mu*buf + g; w -= lr*buf</c> (buf starts at 0,
    /// so the first step's buf is g, as in PyTorch).
    /// </summary>
    public static Model Sgd(bool proximal = false)
    {
        var b = GraphBuilder.ForNewModel(17, "sgd");
        var (w, g) = Common(b, proximal);
        var buf = b.Input(OptimizerNames.State1, ElementType.Float, Dim.Symbol("n"));
        Value lr = Scalar(b, OptimizerNames.LearningRate), mu = Scalar(b, OptimizerNames.Momentum), wd = Scalar(b, OptimizerNames.WeightDecay);
        var gd = b.Add(g, b.Mul(w, wd));
        var buf1 = b.Add(b.Mul(buf, mu), gd);
        var w1 = b.Sub(w, b.Mul(buf1, lr));
        b.Output(b.Identity(w1), OptimizerNames.ParamOut);
        b.Output(b.Identity(buf1), OptimizerNames.State1Out);
        return b.Model!;
    }

    /// <summary>The squared L2 norm of a flat buffer (for clipping by global norm).</summary>
    public static Model SquaredNorm()
    {
        var b = GraphBuilder.ForNewModel(17, "squared_norm");
        var x = b.Input(OptimizerNames.Grad, ElementType.Float, Dim.Symbol("n"));
        b.Output(b.Op("ReduceSumSquare", [x], Onnx.Attribute.Of("keepdims", 0L)), OptimizerNames.SquaredNorm);
        return b.Model!;
    }

    private static (Value w, Value g) Common(GraphBuilder b, bool proximal)
    {
        var w = b.Input(OptimizerNames.Param, ElementType.Float, Dim.Symbol("n"));
        var raw = b.Input(OptimizerNames.Grad, ElementType.Float, Dim.Symbol("n"));
        var g = b.Mul(raw, Scalar(b, OptimizerNames.GradScale));
        if (proximal)
        {
            var reference = b.Input(OptimizerNames.Reference, ElementType.Float, Dim.Symbol("n"));
            g = b.Add(g, b.Mul(b.Sub(w, reference), Scalar(b, OptimizerNames.Rho)));
        }
        return (w, g);
    }

    private static Value Scalar(GraphBuilder b, string name) => b.Input(name, ElementType.Float);
}
