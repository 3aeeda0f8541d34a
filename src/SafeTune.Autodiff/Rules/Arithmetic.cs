namespace SafeTune.Autodiff.Rules;

// Broadcasting binary ops: every input gradient goes through the shared reduce-to-shape helper.

/// <summary>d(a+b) = g, g.</summary>
internal sealed class AddGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        var g = c.GO(0)!;
        if (c.NeedGI(0)) c.SetGI(0, c.ReduceToInput(g, 0));
        if (c.NeedGI(1)) c.SetGI(1, c.ReduceToInput(g, 1));
    }
}

/// <summary>d(a-b) = g, -g.</summary>
internal sealed class SubGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        var g = c.GO(0)!;
        if (c.NeedGI(0)) c.SetGI(0, c.ReduceToInput(g, 0));
        if (c.NeedGI(1)) c.SetGI(1, c.ReduceToInput(c.B.Neg(g), 1));
    }
}

/// <summary>d(a*b) = g*b, g*a.</summary>
internal sealed class MulGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        var g = c.GO(0)!;
        if (c.NeedGI(0)) c.SetGI(0, c.ReduceToInput(c.B.Mul(g, c.I(1)), 0));
        if (c.NeedGI(1)) c.SetGI(1, c.ReduceToInput(c.B.Mul(g, c.I(0)), 1));
    }
}

/// <summary>d(a/b) = g/b, -g*y/b where y = a/b.</summary>
internal sealed class DivGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        var g = c.GO(0)!;
        if (c.NeedGI(0)) c.SetGI(0, c.ReduceToInput(c.B.Div(g, c.I(1)), 0));
        if (c.NeedGI(1)) c.SetGI(1, c.ReduceToInput(c.B.Neg(c.B.Div(c.B.Mul(g, c.O(0)), c.I(1))), 1));
    }
}

/// <summary>d(a^p) = g*p*a^(p-1); d/dp = g*y*ln(a).</summary>
internal sealed class PowGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        var b = c.B;
        var g = c.GO(0)!;
        var a = c.I(0);
        var p = c.I(1);
        if (c.NeedGI(0))
        {
            // The exponent may be an integer tensor: do the arithmetic in the base's type.
            var pa = p.ElementType == a.ElementType ? p : b.Cast(p, a.ElementType);
            var pm1 = b.Sub(pa, c.ScalarLike(a, 1));
            c.SetGI(0, c.ReduceToInput(b.Mul(g, b.Mul(pa, b.Pow(a, pm1))), 0));
        }
        if (c.NeedGI(1)) c.SetGI(1, c.ReduceToInput(b.Mul(g, b.Mul(c.O(0), b.Log(a))), 1));
    }
}

/// <summary>d(sum of inputs) = g for each input.</summary>
internal sealed class SumGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        for (int i = 0; i < c.Node.Inputs.Count; i++)
            if (c.NeedGI(i)) c.SetGI(i, c.ReduceToInput(c.GO(0)!, i));
    }
}

/// <summary>d(mean of n inputs) = g/n for each input.</summary>
internal sealed class MeanGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        var scaled = c.B.Mul(c.GO(0)!, c.ScalarLike(c.O(0), 1.0 / c.Node.Inputs.Count));
        for (int i = 0; i < c.Node.Inputs.Count; i++)
            if (c.NeedGI(i)) c.SetGI(i, c.ReduceToInput(scaled, i));
    }
}

/// <summary>Where(c, x, y): g where c, else 0 (and the other way for y).</summary>
internal sealed class WhereGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        var g = c.GO(0)!;
        var zero = c.Zero(g);
        if (c.NeedGI(1)) c.SetGI(1, c.ReduceToShape(c.B.Where(c.I(0), g, zero), c.I(1), c.O(0).Shape));
        if (c.NeedGI(2)) c.SetGI(2, c.ReduceToShape(c.B.Where(c.I(0), zero, g), c.I(2), c.O(0).Shape));
    }
}
