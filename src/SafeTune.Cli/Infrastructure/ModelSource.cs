using SafeTune.Models.Decoders;
using SafeTune.Models.Demo;
using SafeTune.Onnx;
using SafeTune.Pretrained;

namespace SafeTune.Cli.Infrastructure;

/// <summary>The files of a model SafeTune provides by name (<see cref="ModelSource.Named"/>).</summary>
/// <param name="ModelPath">The ONNX model.</param>
/// <param name="Tokenizer">Its tokenizer (the default for <c>--tokenizer</c>).</param>
/// <param name="GenerationModel">The same weights with a key/value cache, when there is one.</param>
public sealed record NamedModelFiles(string ModelPath, string Tokenizer, string? GenerationModel);

/// <summary>Resolves a model argument: a path to an ONNX file, or <c>builtin:NAME</c> for a model SafeTune builds in code.</summary>
public static class ModelSource
{
    private static readonly Dictionary<string, Func<Model>> Builtins = new(StringComparer.OrdinalIgnoreCase)
    {
        ["tiny-llama"] = () => LlamaGraph.Build(LlamaConfig.Tiny, seed: 0),
    };

    /// <summary>The names accepted after <c>builtin:</c>.</summary>
    public static IEnumerable<string> BuiltinNames => Builtins.Keys;

    /// <summary>The names <see cref="Named"/> accepts as <c>--model</c>.</summary>
    public static IReadOnlyList<string> NamedModels { get; } = ["demo", "builtin:demo", "builtin:minilm"];

    /// <summary>True when <paramref name="argument"/> names a model SafeTune provides (and no file of that name exists).</summary>
    public static bool IsNamed(string? argument) =>
        argument is not null && NamedModels.Contains(argument, StringComparer.OrdinalIgnoreCase) && !File.Exists(argument);

    /// <summary>
    /// The files of a model SafeTune provides: <c>demo</c> (or <c>builtin:demo</c>) is the demo model, built on first use
    /// into <see cref="DemoModel.CacheFolder"/> (the folder <c>safetune demo</c> and <c>serve --demo</c> use) and loaded
    /// from there afterwards; <c>builtin:minilm</c> is the pretrained all-MiniLM-L6-v2 with its WordPiece vocabulary,
    /// written once under the cache root. Null for any other argument (a file path).
    /// </summary>
    public static NamedModelFiles? Named(string? argument)
    {
        if (!IsNamed(argument)) return null;
        if (argument!.EndsWith("minilm", StringComparison.OrdinalIgnoreCase))
        {
            var dir = Path.Combine(DemoModel.CacheRoot, "minilm");
            Directory.CreateDirectory(dir);
            var model = Path.Combine(dir, "model.onnx");
            var vocab = Path.Combine(dir, "vocab.txt");
            if (!File.Exists(model) || new FileInfo(model).Length != MiniLmPackage.ModelBytes.Length) MiniLmPackage.WriteModel(model);
            if (!File.Exists(vocab) || new FileInfo(vocab).Length != MiniLmPackage.VocabBytes.Length) MiniLmPackage.WriteVocab(vocab);
            return new NamedModelFiles(model, vocab, null);
        }
        var folder = DemoModel.CacheFolder();
        bool told = false;
        var demo = DemoModel.BuildOrLoad(folder, new Runtime.SynchronousProgress<DemoProgress>(p =>
        {
            // Said only when the model is actually built, not when the cached one is loaded.
            if (p.Stage == "loaded" || told) return;
            told = true;
            Console.Error.WriteLine($"safetune: building the demo model in {folder} (once: about 80 s on 2 cores; later runs load it)");
        }));
        return new NamedModelFiles(demo.ModelPath, demo.TokenizerPath, demo.KvCacheModelPath);
    }

    /// <summary>Loads the model named by <paramref name="argument"/>.</summary>
    public static Model Load(string argument)
    {
        if (Named(argument) is { } named) return Model.Load(named.ModelPath);
        if (argument.StartsWith("builtin:", StringComparison.OrdinalIgnoreCase))
        {
            var name = argument["builtin:".Length..];
            return Builtins.TryGetValue(name, out var build)
                ? build()
                : throw new UserInputException($"unknown built-in model '{name}'; available: {string.Join(", ", BuiltinNames.Concat(["demo", "minilm"]))}.");
        }
        return Models.Generation.DecoderFolder.LoadModel(argument);
    }

    /// <summary>
    /// Loads the model named by <paramref name="argument"/> for a command that trains it or takes its gradients: as
    /// <see cref="LoadRunnable"/>, and a model with ONNX Runtime contrib ops is refused, naming them.
    /// </summary>
    public static Model LoadTrainable(string argument)
    {
        var model = LoadRunnable(argument);
        Onnx.Inspection.ContribOps.EnsureTrainable(model, argument);
        return model;
    }

    /// <summary>Loads the model named by <paramref name="argument"/> for a command that runs it, refusing opsets ONNX Runtime does not run.</summary>
    public static Model LoadRunnable(string argument)
    {
        var model = Load(argument);
        Runtime.SessionFactory.RequireSupportedOpset(model, argument);
        return model;
    }
}
