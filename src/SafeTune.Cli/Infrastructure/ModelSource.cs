using SafeTune.Models.Decoders;
using SafeTune.Onnx;

namespace SafeTune.Cli.Infrastructure;

/// <summary>Resolves a model argument: a path to an ONNX file, or <c>builtin:NAME</c> for a model SafeTune builds in code.</summary>
public static class ModelSource
{
    private static readonly Dictionary<string, Func<Model>> Builtins = new(StringComparer.OrdinalIgnoreCase)
    {
        ["tiny-llama"] = () => LlamaGraph.Build(LlamaConfig.Tiny, seed: 0),
    };

    /// <summary>The names accepted after <c>builtin:</c>.</summary>
    public static IEnumerable<string> BuiltinNames => Builtins.Keys;

    /// <summary>Loads the model named by <paramref name="argument"/>.</summary>
    public static Model Load(string argument)
    {
        if (argument.StartsWith("builtin:", StringComparison.OrdinalIgnoreCase))
        {
            var name = argument["builtin:".Length..];
            return Builtins.TryGetValue(name, out var build)
                ? build()
                : throw new UserInputException($"unknown built-in model '{name}'; available: {string.Join(", ", BuiltinNames)}.");
        }
        return Model.Load(argument);
    }

    /// <summary>Loads the model named by <paramref name="argument"/> for a command that runs it, refusing opsets ONNX Runtime does not run.</summary>
    public static Model LoadRunnable(string argument)
    {
        var model = Load(argument);
        Runtime.SessionFactory.RequireSupportedOpset(model, argument);
        return model;
    }
}
