namespace SafeTune.Autodiff.Rules;

/// <summary>A rule for y = f(x) written as dx = g * f'(x, y).</summary>
internal sealed class UnaryGrad(Func<GradientContext, Value, Value> derivativeTimesG) : IGradientRule
{
    public void Build(GradientContext c)
    {
        if (c.NeedGI(0)) c.SetGI(0, derivativeTimesG(c, c.GO(0)!));
    }

    public static UnaryGrad Identity { get; } = new((c, g) => g);
    public static UnaryGrad Neg { get; } = new((c, g) => c.B.Neg(g));
    public static UnaryGrad Exp { get; } = new((c, g) => c.B.Mul(g, c.O(0)));
    public static UnaryGrad Log { get; } = new((c, g) => c.B.Div(g, c.I(0)));
    public static UnaryGrad Sqrt { get; } = new((c, g) => c.B.Div(c.B.Mul(g, c.ScalarLike(g, 0.5)), c.O(0)));
    public static UnaryGrad Reciprocal { get; } = new((c, g) => c.B.Neg(c.B.Mul(g, c.B.Mul(c.O(0), c.O(0)))));
    public static UnaryGrad Tanh { get; } = new((c, g) => c.B.Mul(g, c.B.Sub(c.ScalarLike(g, 1), c.B.Mul(c.O(0), c.O(0)))));
    public static UnaryGrad Sigmoid { get; } = new((c, g) => c.B.Mul(g, c.B.Mul(c.O(0), c.B.Sub(c.ScalarLike(g, 1), c.O(0)))));
    public static UnaryGrad Relu { get; } = new((c, g) => c.B.Where(c.B.Op("Greater", c.O(0), c.Zero(g)), g, c.Zero(g)));
    public static UnaryGrad Sin { get; } = new((c, g) => c.B.Mul(g, c.B.Cos(c.I(0))));
    public static UnaryGrad Cos { get; } = new((c, g) => c.B.Neg(c.B.Mul(g, c.B.Sin(c.I(0)))));
    public static UnaryGrad Abs { get; } = new((c, g) => c.B.Mul(g, c.B.Op("Sign", c.I(0))));

    /// <summary>d erf(x) = 2/sqrt(pi) * exp(-x^2).</summary>
    public static UnaryGrad Erf { get; } = new((c, g) =>
    {
        var x = c.I(0);
        var e = c.B.Exp(c.B.Neg(c.B.Mul(x, x)));
        return c.B.Mul(g, c.B.Mul(e, c.ScalarLike(g, 2.0 / Math.Sqrt(Math.PI))));
    });

    /// <summary>Float-to-float Cast: cast the gradient back to the input type.</summary>
    public static UnaryGrad Cast { get; } = new((c, g) => g.ElementType == c.I(0).ElementType ? g : c.B.Cast(g, c.I(0).ElementType));

    /// <summary>Expand broadcasts: sum back to the input shape.</summary>
    public static UnaryGrad Expand { get; } = new((c, g) => c.ReduceToInput(g, 0));

    /// <summary>Reshape-like ops (Reshape, Squeeze, Unsqueeze, Flatten): reshape the gradient to the input's shape.</summary>
    public static UnaryGrad ReshapeLike { get; } = new((c, g) => c.B.Reshape(g, c.B.ShapeOf(c.I(0))));
}
