namespace SafeTune.Onnx.Passes;

/// <summary>The outcome of a pass: the model (changed in place) and whether anything was modified.</summary>
public readonly record struct PassResult(Model Model, bool Modified);

/// <summary>
/// A graph rewrite with explicit preconditions and postconditions. <see cref="PassRunner"/> checks both around
/// <see cref="Apply"/>; a violated condition throws <see cref="OnnxFormatException"/> naming the pass.
/// </summary>
public interface IGraphPass
{
    /// <summary>The pass name, for messages.</summary>
    string Name { get; }

    /// <summary>Throws when the model is not one this pass can handle.</summary>
    void CheckPreconditions(Model model);

    /// <summary>Rewrites the model in place.</summary>
    PassResult Apply(Model model);

    /// <summary>Throws when the pass did not leave the model in the promised state.</summary>
    void CheckPostconditions(Model model);
}

/// <summary>Runs passes with their checks.</summary>
public static class PassRunner
{
    /// <summary>Runs one pass: preconditions, apply, postconditions.</summary>
    public static PassResult Run(Model model, IGraphPass pass)
    {
        pass.CheckPreconditions(model);
        var result = pass.Apply(model);
        pass.CheckPostconditions(result.Model);
        return result;
    }

    /// <summary>Runs passes in order; the result is modified when any pass modified the model.</summary>
    public static PassResult Run(Model model, params IGraphPass[] passes)
    {
        bool modified = false;
        foreach (var p in passes) modified |= Run(model, p).Modified;
        return new PassResult(model, modified);
    }
}
