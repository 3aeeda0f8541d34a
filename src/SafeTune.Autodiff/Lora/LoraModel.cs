using SafeTune.Onnx;
using SafeTune.Onnx.Passes;

namespace SafeTune.Autodiff.Lora;

/// <summary>
/// A model with LoRA adapters on its projections: the graph to train, the adapters' parameters to train, and the merge
/// that folds the trained adapters back into a plain graph.
/// </summary>
public sealed class LoraModel
{
    private readonly LoraPass _pass;

    private LoraModel(Model model, LoraPass pass)
    {
        Model = model;
        _pass = pass;
    }

    /// <summary>The model with the adapters inserted.</summary>
    public Model Model { get; }

    /// <summary>The inserted adapters.</summary>
    public IReadOnlyList<LoraAdapter> Adapters => _pass.Adapters;

    /// <summary>The adapters' A and B initializers: the parameters to train.</summary>
    public IReadOnlyList<string> TrainableParameters => _pass.TrainableParameters;

    /// <summary>
    /// Inserts adapters chosen by <paramref name="options"/> into a copy of <paramref name="model"/>, or into the model
    /// itself when <paramref name="copy"/> is false (for a graph built only to be trained).
    /// </summary>
    public static LoraModel Wrap(Model model, LoraOptions options, bool copy = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        if (copy) model = model.Clone("LoRA model");
        var pass = new LoraPass(options);
        PassRunner.Run(model, pass);
        return new LoraModel(model, pass);
    }

    /// <summary>Folds the adapters of <paramref name="trained"/> (this model with trained weights) into its projections.</summary>
    public Model Merge(Model trained) => LoraMerge.Merge(trained, _pass.Adapters);
}
