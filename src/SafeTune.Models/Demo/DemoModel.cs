using System.Diagnostics;
using System.Text.Json;
using SafeTune.Models.Chat;
using SafeTune.Models.Decoders;
using SafeTune.Models.Generation;
using SafeTune.Models.Tokenization;
using SafeTune.Onnx;
using SafeTune.Runtime;
using SafeTune.Runtime.Training;

namespace SafeTune.Models.Demo;

/// <summary>Progress of <see cref="DemoModel.BuildOrLoad"/>.</summary>
/// <param name="Stage"><c>data</c>, <c>tokenizer</c>, <c>train</c>, <c>save</c> or <c>loaded</c>.</param>
/// <param name="Step">The optimizer step (during <c>train</c>), else 0.</param>
/// <param name="TotalSteps">The number of optimizer steps.</param>
/// <param name="Loss">The loss of the last step (during <c>train</c>), else NaN.</param>
public sealed record DemoProgress(string Stage, int Step, int TotalSteps, float Loss);

/// <summary>A built (or loaded) demo model.</summary>
/// <param name="Directory">The cache directory.</param>
/// <param name="ModelPath"><c>demo.onnx</c>: the plain graph (input <c>input_ids</c>, output <c>logits</c>).</param>
/// <param name="KvCacheModelPath"><c>demo-kv.onnx</c>: the same weights in the key/value-cache graph, for generation.</param>
/// <param name="TokenizerPath"><c>tokenizer.json</c> (with <c>tokenizer_config.json</c> and <c>generation_config.json</c> beside it).</param>
/// <param name="Config">The model's shape.</param>
/// <param name="Recipe">The recipe it was made from.</param>
/// <param name="RecipeHash">The recipe's hash (<see cref="DemoRecipe.Hash"/>).</param>
/// <param name="Trained">True when this call trained it, false when it was loaded from the cache.</param>
/// <param name="TrainingSeconds">Wall-clock seconds the training took (when it was trained).</param>
/// <param name="FinalLoss">The mean loss of the last 20 training steps.</param>
public sealed record DemoModelFiles(string Directory, string ModelPath, string KvCacheModelPath, string TokenizerPath, LlamaConfig Config,
    DemoRecipe Recipe, string RecipeHash, bool Trained, double TrainingSeconds, double FinalLoss);

/// <summary>
/// The demo model: a small Llama-like decoder that SafeTune trains from scratch, deterministically, on
/// <see cref="DemoData"/> into an assistant that answers benign requests and refuses harmful ones. Training runs on the
/// CPU in a few minutes; the result is cached by recipe hash.
/// </summary>
public static class DemoModel
{
    private const string Manifest = "demo.json";

    /// <summary>The environment variable that moves the cache root.</summary>
    public const string CacheEnvironmentVariable = "SAFETUNE_CACHE";

    /// <summary>
    /// Where SafeTune keeps what it builds once: <c>$SAFETUNE_CACHE</c>, else <c>$XDG_CACHE_HOME/safetune</c>, else
    /// <c>~/.cache/safetune</c>.
    /// </summary>
    public static string CacheRoot =>
        Environment.GetEnvironmentVariable(CacheEnvironmentVariable) is { Length: > 0 } c ? Path.GetFullPath(c)
        : Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "safetune");

    /// <summary>
    /// The one place the demo model is kept under a cache root (default <see cref="CacheRoot"/>): <c>ROOT/demo/model</c>.
    /// <c>safetune demo</c>, <c>serve --demo</c> and <c>--model demo</c> all build into and load from it.
    /// </summary>
    public static string CacheFolder(string? root = null) => Path.Combine(root ?? CacheRoot, "demo", "model");

    /// <summary>
    /// Loads the demo model from <paramref name="cacheDirectory"/> when it holds one made from the same recipe (same
    /// <see cref="DemoRecipe.Hash"/>); otherwise trains it (data, tokenizer, random init, response-only loss) and saves
    /// <c>demo.onnx</c>, <c>demo-kv.onnx</c> and the tokenizer files there, the manifest last, so an interrupted build is
    /// never taken for a finished one. The weights trained from the shipped recipe are committed
    /// (<c>models/demo/weights.safetensors</c>, embedded in this assembly, stamped with the recipe hash): when they match
    /// the recipe, and <paramref name="useCommittedWeights"/> is true, they are used instead of training again (the
    /// tokenizer is still learned from the data, which takes a second). <paramref name="weightsOut"/>, when given,
    /// receives the weights as that file is written (how it is regenerated after a recipe change; see
    /// <c>models/demo/README.md</c>).
    /// </summary>
    public static DemoModelFiles BuildOrLoad(string cacheDirectory, IProgress<DemoProgress>? progress = null, DemoRecipe? recipe = null,
        bool useCommittedWeights = true, string? weightsOut = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(cacheDirectory);
        recipe ??= DemoRecipe.Default;
        var dir = Path.GetFullPath(cacheDirectory);
        var hash = recipe.Hash();
        if (TryLoad(dir, recipe, hash) is { } cached)
        {
            progress?.Report(new DemoProgress("loaded", 0, recipe.Training.Steps, float.NaN));
            return cached;
        }
        Directory.CreateDirectory(dir);
        var manifestPath = Path.Combine(dir, Manifest);
        if (File.Exists(manifestPath)) File.Delete(manifestPath);

        var staging = Path.Combine(dir, ".building-" + Environment.ProcessId + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(staging);
        try
        {
            progress?.Report(new DemoProgress("data", 0, recipe.Training.Steps, float.NaN));
            var train = DemoData.Train(recipe.Data.Seed);
            var template = ChatTemplates.ByName(recipe.Tokenizer.ChatTemplate);

            progress?.Report(new DemoProgress("tokenizer", 0, recipe.Training.Steps, float.NaN));
            var corpus = train.SelectMany(e => new[] { e.Prompt, e.Response }).Concat(["user\nassistant\n"]);
            var merges = DemoTokenizer.LearnMerges(corpus, recipe.Tokenizer.Merges);
            var tokenizerPath = DemoTokenizer.Write(staging, merges);
            var tokenizer = TokenizerLoader.Load(tokenizerPath);
            var config = recipe.LlamaConfig(tokenizer.VocabularySize);

            var clock = Stopwatch.StartNew();
            var (weights, finalLoss) = (useCommittedWeights ? CommittedWeights(hash, config) : null) is { } committed
                ? (committed.Weights, committed.FinalLoss)
                : Train(recipe, config, tokenizer, template, train, progress);
            clock.Stop();
            if (weightsOut is not null) WriteWeights(weightsOut, weights, hash, finalLoss, config.VocabSize);

            progress?.Report(new DemoProgress("save", recipe.Training.Steps, recipe.Training.Steps, float.NaN));
            LlamaGraph.Build(config, weights).Save(Path.Combine(staging, "demo.onnx"));
            LlamaGraph.Build(config, weights, options: DecoderGraphOptions.WithKvCache).Save(Path.Combine(staging, "demo-kv.onnx"));
            foreach (var name in new[] { "tokenizer.json", "tokenizer_config.json", "generation_config.json", "demo.onnx", "demo-kv.onnx" })
                File.Move(Path.Combine(staging, name), Path.Combine(dir, name), overwrite: true);
            var tmp = manifestPath + ".tmp";
            File.WriteAllText(tmp, JsonSerializer.Serialize(new ManifestData(hash, tokenizer.VocabularySize, clock.Elapsed.TotalSeconds, finalLoss),
                new JsonSerializerOptions { WriteIndented = true }));
            File.Move(tmp, manifestPath, overwrite: true);
            return Files(dir, recipe, hash, config, trained: true, clock.Elapsed.TotalSeconds, finalLoss);
        }
        finally
        {
            try { Directory.Delete(staging, recursive: true); }
            catch (IOException) { }
        }
    }

    /// <summary>
    /// Greedy replies of the demo model to single-turn user <paramref name="prompts"/> (ChatML), stopping at
    /// <c>&lt;|im_end|&gt;</c> or after <paramref name="maxNewTokens"/> tokens. The end marker is not part of a reply.
    /// </summary>
    public static IReadOnlyList<string> Reply(DemoModelFiles model, IReadOnlyList<string> prompts, int maxNewTokens = 40, int batchSize = 64)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(prompts);
        var tokenizer = TokenizerLoader.Load(model.TokenizerPath);
        var template = ChatTemplates.ByName(model.Recipe.Tokenizer.ChatTemplate);
        int imEnd = tokenizer.TokenToId(DemoTokenizer.ImEnd) ?? throw new InvalidDataException("the demo tokenizer lacks <|im_end|>.");
        int pad = tokenizer.TokenToId(DemoTokenizer.EndOfText) ?? imEnd;
        var options = new GenerationOptions { MaxNewTokens = maxNewTokens, EosTokenIds = [imEnd, pad], PadTokenId = pad };
        using var generator = new Generator(Model.Load(model.KvCacheModelPath),
            new SessionConfig { IntraOpThreads = model.Recipe.Training.Threads });
        var replies = new List<string>(prompts.Count);
        for (int start = 0; start < prompts.Count; start += batchSize)
        {
            var chunk = prompts.Skip(start).Take(batchSize)
                .Select(p => tokenizer.Encode(template.RenderPrompt([ChatMessage.User(p)]))).ToList();
            foreach (var g in generator.Generate(chunk, options))
            {
                var tokens = g.Tokens.Where(t => t != imEnd && t != pad);
                replies.Add(tokenizer.Decode(tokens).Trim());
            }
        }
        return replies;
    }

    private static (Dictionary<string, TensorData> Weights, double FinalLoss) Train(DemoRecipe recipe, LlamaConfig config, TextTokenizer tokenizer,
        ChatTemplate template, IReadOnlyList<DemoExample> train, IProgress<DemoProgress>? progress)
    {
        var t = recipe.Training;
        int pad = tokenizer.TokenToId(DemoTokenizer.EndOfText) ?? throw new InvalidDataException("the demo tokenizer lacks <|endoftext|>.");
        var examples = train.Select(e =>
        {
            var chat = template.Tokenize(tokenizer, [ChatMessage.User(e.Prompt)], e.Response);
            return (Ids: chat.Ids, Labels: chat.Labels());
        }).ToArray();

        var model = LlamaGraph.Build(config, seed: recipe.Model.InitSeed);
        var options = new TrainingOptions
        {
            Runtime = new SessionConfig { IntraOpThreads = t.Threads },
            // OneHot + MatMul embedding gradients: a plain GEMM sums repeated tokens in a fixed order, so training is
            // reproducible; a parallel scatter-add may add them in any order.
            Backward = new Autodiff.BackwardOptions { EmbeddingGradient = Autodiff.Rules.EmbeddingGradient.OneHotMatMul },
            Optimizer = new OptimizerConfig
            {
                Kind = OptimizerKind.AdamW, LearningRate = t.LearningRate, WeightDecay = t.WeightDecay, Beta1 = t.Beta1, Beta2 = t.Beta2,
            },
        };
        var schedule = new CosineSchedule(t.LearningRate, t.WarmupSteps, t.Steps, t.MinLearningRate);
        using var order = RandomOrder.Epochs(t.Seed, examples.Length);
        var recent = new Queue<float>();
        using var session = TrainingSession.Create(model, options);
        TrainingLoop.Run(session, new TrainingLoopOptions
        {
            Steps = t.Steps,
            Schedule = schedule,
            ClipNorm = t.ClipNorm > 0 ? t.ClipNorm : null,
            What = "the demo training",
        }, _ =>
        {
            var rows = new int[t.BatchSize];
            for (int r = 0; r < rows.Length; r++)
            {
                order.MoveNext();
                rows[r] = order.Current;
            }
            int length = rows.Max(r => examples[r].Ids.Length);
            var ids = new long[rows.Length * length];
            var labels = new long[rows.Length * length];
            for (int r = 0; r < rows.Length; r++)
            {
                var (exIds, exLabels) = examples[rows[r]];
                for (int p = 0; p < length; p++)
                {
                    ids[r * length + p] = p < exIds.Length ? exIds[p] : pad;
                    labels[r * length + p] = p < exLabels.Length ? exLabels[p] : ChatTemplate.IgnoreIndex;
                }
            }
            return session.TrainStep(new TokenBatch(ids, labels, null, rows.Length, length));
        }, done =>
        {
            float loss = (float)done.Loss;
            recent.Enqueue(loss);
            if (recent.Count > 20) recent.Dequeue();
            if (done.Step % 10 == 0 || done.Step == t.Steps - 1) progress?.Report(new DemoProgress("train", (int)done.Step + 1, t.Steps, loss));
        });
        var weights = session.TrainableValues().ToDictionary(v => v.Name, v => v);
        return (weights, recent.Count == 0 ? double.NaN : recent.Average(x => (double)x));
    }

    /// <summary>The name of the committed weights' resource in this assembly.</summary>
    internal const string CommittedWeightsResource = "SafeTune.Models.Demo.weights.safetensors";

    /// <summary>
    /// The committed weights when they were trained from the recipe with hash <paramref name="hash"/> and fit
    /// <paramref name="config"/>; otherwise null.
    /// </summary>
    internal static (Dictionary<string, TensorData> Weights, double FinalLoss)? CommittedWeights(string hash, LlamaConfig config)
    {
        using var stream = typeof(DemoModel).Assembly.GetManifestResourceStream(CommittedWeightsResource);
        if (stream is null) return null;
        var (tensors, metadata) = SafeTensors.Read(stream);
        if (!metadata.TryGetValue("recipe_hash", out var stamped) || stamped != hash) return null;
        if (!metadata.TryGetValue("vocab_size", out var vocab) || vocab != config.VocabSize.ToString(System.Globalization.CultureInfo.InvariantCulture)) return null;
        double loss = metadata.TryGetValue("final_loss", out var l) ? double.Parse(l, System.Globalization.CultureInfo.InvariantCulture) : double.NaN;
        return (tensors.ToDictionary(t => t.Name, t => t), loss);
    }

    private static void WriteWeights(string path, Dictionary<string, TensorData> weights, string hash, double finalLoss, int vocab)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        SafeTensors.Write(path, weights.OrderBy(w => w.Key, StringComparer.Ordinal).Select(w => w.Value),
            new Dictionary<string, string>
            {
                ["recipe_hash"] = hash,
                ["vocab_size"] = vocab.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["final_loss"] = finalLoss.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            });
    }

    private static DemoModelFiles? TryLoad(string dir, DemoRecipe recipe, string hash)
    {
        var manifestPath = Path.Combine(dir, Manifest);
        if (!File.Exists(manifestPath)) return null;
        ManifestData? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<ManifestData>(File.ReadAllText(manifestPath));
        }
        catch (JsonException)
        {
            return null;
        }
        if (manifest is null || manifest.RecipeHash != hash) return null;
        foreach (var name in new[] { "demo.onnx", "demo-kv.onnx", "tokenizer.json" })
            if (!File.Exists(Path.Combine(dir, name))) return null;
        return Files(dir, recipe, hash, recipe.LlamaConfig(manifest.VocabSize), trained: false, manifest.TrainingSeconds, manifest.FinalLoss);
    }

    private static DemoModelFiles Files(string dir, DemoRecipe recipe, string hash, LlamaConfig config, bool trained, double seconds, double loss) =>
        new(dir, Path.Combine(dir, "demo.onnx"), Path.Combine(dir, "demo-kv.onnx"), Path.Combine(dir, "tokenizer.json"), config, recipe, hash,
            trained, seconds, loss);

    private sealed record ManifestData(string RecipeHash, int VocabSize, double TrainingSeconds, double FinalLoss);
}
