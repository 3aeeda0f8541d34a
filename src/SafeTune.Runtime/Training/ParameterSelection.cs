using System.Text.RegularExpressions;
using SafeTune.Onnx;
using SafeTune.Onnx.Inspection;
using SafeTune.Onnx.Passes;

namespace SafeTune.Runtime.Training;

/// <summary>
/// How the trained initializers are chosen for full fine-tuning: the parameters <see cref="ParameterRoles"/> finds (buffers
/// stay frozen), with copies of tied weights re-tied first, and overrides by name.
/// </summary>
public sealed record ParameterSelection
{
    /// <summary>Also train the float initializers whose names match this regex (buffers included): <c>--trainable</c>.</summary>
    public string? TrainablePattern { get; init; }
    /// <summary>Freeze the initializers whose names match this regex; it wins over <see cref="TrainablePattern"/>: <c>--frozen</c>.</summary>
    public string? FrozenPattern { get; init; }
    /// <summary>Train exact copies of other weights as separate tensors instead of re-tying them: <c>--keep-untied</c>.</summary>
    public bool KeepUntied { get; init; }

    /// <summary>True when no override is given.</summary>
    public bool IsDefault => TrainablePattern is null && FrozenPattern is null && !KeepUntied;

    /// <summary>Throws <see cref="UserInputException"/> naming the option when a pattern is not a valid regex.</summary>
    public void Validate()
    {
        _ = Compile(TrainablePattern, "trainable");
        _ = Compile(FrozenPattern, "frozen");
    }

    /// <summary>
    /// Chooses the trained initializers of <paramref name="model"/>. Unless <see cref="KeepUntied"/>, the result's model is a
    /// copy with tied copies re-tied (the model itself when there are none); the names refer to that model.
    /// </summary>
    internal SelectedParameters Resolve(Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var trainableRegex = Compile(TrainablePattern, "trainable");
        var frozenRegex = Compile(FrozenPattern, "frozen");
        var roles = ParameterRoles.Of(model);
        IReadOnlyList<TiedCopy> ties = KeepUntied ? [] : TiedCopies.Find(model, roles.Where(r => r.IsParameter).Select(r => r.Name));
        if (ties.Count > 0)
        {
            model = model.Clone("re-tied model");
            PassRunner.Run(model, new RetieCopiesPass(ties));
            roles = ParameterRoles.Of(model);
        }
        var floats = roles.Select(r => r.Name).ToList();
        if (trainableRegex is not null && !floats.Any(trainableRegex.IsMatch))
            throw new OptionException("trainable", $"{{trainable}} '{TrainablePattern}' matches no float initializer of the model.");
        if (frozenRegex is not null && !floats.Any(frozenRegex.IsMatch))
            throw new OptionException("frozen", $"{{frozen}} '{FrozenPattern}' matches no float initializer of the model.");
        var trainable = roles
            .Where(r => (r.IsParameter || trainableRegex?.IsMatch(r.Name) == true) && frozenRegex?.IsMatch(r.Name) != true)
            .Select(r => r.Name)
            .ToList();
        if (trainable.Count == 0)
            throw FrozenPattern is null ? new OptionException("trainable", "the model has no trainable parameters (every float initializer is a buffer); choose some with {trainable}.")
                : new OptionException("frozen", $"{{frozen}} '{FrozenPattern}' leaves nothing to train.");
        return new SelectedParameters(model, trainable, roles, ties);
    }

    private static Regex? Compile(string? pattern, string option)
    {
        if (pattern is null) return null;
        try
        {
            return new Regex(pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException e)
        {
            throw new OptionException(option, $"{{{option}}} '{pattern}' is not a valid regular expression: {e.Message}");
        }
    }
}

/// <summary>The outcome of <see cref="ParameterSelection.Resolve"/>.</summary>
/// <param name="Model">The model to train: a re-tied copy, or the model itself.</param>
/// <param name="Trainable">The initializers to train, in initializer order.</param>
/// <param name="Roles">Parameter or buffer, with the reason, for every float initializer of <paramref name="Model"/>.</param>
/// <param name="Ties">The copies re-tied.</param>
internal sealed record SelectedParameters(Model Model, IReadOnlyList<string> Trainable, IReadOnlyList<ParameterRole> Roles, IReadOnlyList<TiedCopy> Ties);
