using BenchmarkDotNet.Attributes;
using SafeTune.Models.Chat;
using SafeTune.Models.Decoders;
using SafeTune.Models.Demo;
using SafeTune.Models.Generation;
using SafeTune.Models.Tokenization;
using SafeTune.Runtime;
using SafeTune.Training.Data;
using SafeTune.Training.Evaluation;

namespace SafeTune.Benchmarks;

/// <summary>
/// Evaluation replies: 64 demo test prompts, <see cref="NewTokens"/> greedy tokens each, on a decoder of the demo model's
/// shape (4 layers, width 128, the demo tokenizer's 768 ids; random weights, so no reply stops early and every run
/// generates 64 x 16 tokens) with the key/value cache, generated <see cref="BatchSize"/> prompts at a time.
/// </summary>
[MemoryDiagnoser]
public class EvaluationBenchmarks
{
    /// <summary>Tokens generated per reply.</summary>
    public const int NewTokens = 16;

    private Evaluator _evaluator = null!;
    private IReadOnlyList<IReadOnlyList<ChatMessage>> _prompts = null!;
    private string _dir = null!;

    /// <summary>Prompts generated together.</summary>
    [Params(1, 8, 64)]
    public int BatchSize { get; set; }

    /// <summary>Learns the demo tokenizer, builds the model and its session, picks the prompts.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var recipe = DemoRecipe.Default;
        var train = DemoData.Train(recipe.Data.Seed);
        _dir = Directory.CreateTempSubdirectory("safetune-bench-").FullName;
        var tokenizer = TokenizerLoader.Load(DemoTokenizer.Write(_dir, DemoTokenizer.LearnMerges(train.SelectMany(e => new[] { e.Prompt, e.Response }), recipe.Tokenizer.Merges)));
        var model = LlamaGraph.Build(recipe.LlamaConfig(tokenizer.VocabularySize), seed: 0, options: DecoderGraphOptions.WithKvCache);
        _evaluator = new Evaluator(new EvalModel(model, tokenizer, ChatTemplates.ChatMl),
            new EvalOptions { BatchSize = BatchSize, MaxNewTokens = NewTokens, Runtime = new SessionConfig { IntraOpThreads = recipe.Training.Threads } });
        _prompts = [.. DemoData.Test(recipe.Data.Seed).Take(64).Select(e => (IReadOnlyList<ChatMessage>)[ChatMessage.User(e.Prompt)])];
    }

    /// <summary>Replies to the 64 prompts.</summary>
    [Benchmark(Description = "64 replies x 16 tokens")]
    public int Replies() => _evaluator.Generate(_prompts).Sum(r => r.Tokens);

    /// <summary>Releases the session.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _evaluator.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}

/// <summary>
/// Building one optimizer step's batches from tokenized examples (the demo training set, 8 x 4 rows), padded and packed
/// into 256-token rows: the data work the fine-tuning loop does before every step.
/// </summary>
[MemoryDiagnoser]
public class BatchingBenchmarks
{
    private SftBatcher _padded = null!, _packed = null!;
    private long _step;

    /// <summary>Tokenizes the demo training set and creates both batchers.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var recipe = DemoRecipe.Default;
        var train = DemoData.Train(recipe.Data.Seed);
        var dir = Directory.CreateTempSubdirectory("safetune-bench-").FullName;
        var tokenizer = TokenizerLoader.Load(DemoTokenizer.Write(dir, DemoTokenizer.LearnMerges(train.SelectMany(e => new[] { e.Prompt, e.Response }), recipe.Tokenizer.Merges)));
        Directory.Delete(dir, recursive: true);
        var examples = train.Select((e, i) => new SftExample($"demo:{i + 1}", [ChatMessage.User(e.Prompt)], e.Response, "demo", i + 1, SftFormat.PromptResponse)).ToList();
        var set = SftTokenizer.Tokenize(examples, tokenizer, ChatTemplates.ChatMl, new TokenizeOptions { MaxLength = 256 });
        var options = new BatchingOptions { MicroBatchSize = 8, GradientAccumulationSteps = 4, Seed = 1 };
        _padded = new SftBatcher(set.Examples, SftBatcher.PadIdOf(tokenizer), options);
        _packed = new SftBatcher(set.Examples, SftBatcher.PadIdOf(tokenizer), options with { Layout = BatchLayout.Pack, SequenceLength = 256 });
    }

    /// <summary>The next step's 4 padded micro-batches of 8 rows.</summary>
    [Benchmark(Baseline = true, Description = "padded step (4 x 8 rows)")]
    public int Padded() => _padded.GetStep(_step++ % 1000).ResponseTokens;

    /// <summary>The next step's 4 packed micro-batches of 8 rows of 256 tokens.</summary>
    [Benchmark(Description = "packed step (4 x 8 x 256)")]
    public int Packed() => _packed.GetStep(_step++ % 1000).ResponseTokens;
}
