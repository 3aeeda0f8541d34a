using System.Text.Json;
using SafeTune.Models.Chat;
using SafeTune.Models.Decoders;
using SafeTune.Models.Tokenization;
using SafeTune.Runtime.Training;
using SafeTune.TestSupport;
using SafeTune.Training.Data;
using SafeTune.Training.FineTuning;

namespace SafeTune.Training.Tests;

/// <summary>
/// A train run on chat models with their own Jinja templates feeds the ids Hugging Face builds: the batches the run
/// trains on against transformers.js's apply_chat_template ids for the same conversations
/// (tests/fixtures/make_train_chats.mjs writes tests/fixtures/tokenizers/train/expected.json).
/// </summary>
public sealed class TrainFeedTests
{
    public static TheoryData<string> Models() => ["smollm2-135m-instruct", "tinyllama-1.1b-chat-v1.0"];

    /// <summary>A model folder in Hub layout: the real tokenizer.json and tokenizer_config.json (chat template inside).</summary>
    private static string ModelFolder(TempDir dir, string name)
    {
        var (tokenizer, config) = name == "smollm2-135m-instruct"
            ? (Repo.Fixture("tokenizers", "hub", "smollm", "tokenizer.json"), Repo.Fixture("tokenizers", "train", name, "tokenizer_config.json"))
            : (Repo.Fixture("tokenizers", "hub", "tinyllama", "tokenizer.json"), Repo.Fixture("tokenizers", "hub", "tinyllama", "tokenizer_config.json"));
        var folder = dir.File(name);
        Directory.CreateDirectory(folder);
        File.Copy(tokenizer, Path.Combine(folder, "tokenizer.json"));
        File.Copy(config, Path.Combine(folder, "tokenizer_config.json"));
        return folder;
    }

    [Fact]
    public void Max_length_is_held_to_the_model_s_context()
    {
        using var dir = new TempDir();
        var folder = ModelFolder(dir, "smollm2-135m-instruct");
        var tokenizer = TokenizerLoader.Load(folder);
        var modelPath = Path.Combine(folder, "model.onnx");
        var model = LlamaGraph.Build(new LlamaConfig
        {
            VocabSize = tokenizer.VocabularySize, HiddenSize = 16, Layers = 1, Heads = 2, KeyValueHeads = 1, IntermediateSize = 32, TieWordEmbeddings = true,
        }, seed: 5);
        model.MetadataProps.RemoveAll(p => p.Key == SafeTune.Models.Generation.ContextLength.MetadataKey);
        model.MetadataProps.Add(new(SafeTune.Models.Generation.ContextLength.MetadataKey, "40"));
        model.Save(modelPath);

        // --max-length 256 asked; the model reads 40 tokens at most, so no row of any step is longer.
        var fed = new List<TrainingBatch>();
        var job = TrainJob.Run(new TrainJobOptions
        {
            Model = modelPath, Tokenizer = folder, Data = [Repo.Fixture("tokenizers", "train", "conversations.jsonl")], Steps = 2, BatchSize = 2, MaxLength = 256,
            Lora = new Autodiff.Lora.LoraOptions { Rank = 2, Alpha = 4 }, WarmupSteps = 0,
            Runtime = new Runtime.SessionConfig { IntraOpThreads = 1 },
            StepBatches = (_, batches) => fed.AddRange(batches),
        });
        Assert.Equal(2, job.Result.Steps);
        Assert.NotEmpty(fed);
        Assert.All(fed, b => Assert.InRange(b.Tokens.SequenceLength, 1, 40));
        Assert.Contains(fed, b => b.Tokens.SequenceLength == 40);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void A_train_run_feeds_the_prompt_and_response_tokens_hugging_face_builds(string name)
    {
        using var dir = new TempDir();
        var folder = ModelFolder(dir, name);
        var tokenizer = TokenizerLoader.Load(folder);
        var modelPath = Path.Combine(folder, "model.onnx");
        LlamaGraph.Build(new LlamaConfig
        {
            VocabSize = tokenizer.VocabularySize, HiddenSize = 16, Layers = 1, Heads = 2, KeyValueHeads = 1, IntermediateSize = 32, TieWordEmbeddings = true,
        }, seed: 5).Save(modelPath);
        var data = Repo.Fixture("tokenizers", "train", "conversations.jsonl");
        using var expected = JsonDocument.Parse(File.ReadAllText(Repo.Fixture("tokenizers", "train", "expected.json")));
        var want = expected.RootElement.GetProperty("models").GetProperty(name).EnumerateArray().ToList();

        // One step over all four conversations (a system prompt, none, multi-turn, system + multi-turn), padded rows.
        var fed = new List<TrainingBatch>();
        TemplateChoice? chosen = null;
        var job = TrainJob.Run(new TrainJobOptions
        {
            Model = modelPath, Tokenizer = folder, Data = [data], Steps = 1, BatchSize = want.Count, MaxLength = 256,
            Lora = new Autodiff.Lora.LoraOptions { Rank = 2, Alpha = 4 }, WarmupSteps = 0,
            Runtime = new Runtime.SessionConfig { IntraOpThreads = 1 },
            TemplateChosen = c => chosen = c,
            StepBatches = (_, batches) => fed.AddRange(batches),
        });
        Assert.Equal(1, job.Result.Steps);
        Assert.Equal(TemplateOrigin.Model, chosen!.Origin);
        Assert.IsType<JinjaChatTemplate>(chosen.Template);

        var lines = DatasetMix.Parse([data]).Load().Select((e, i) => (e.Id, i)).ToDictionary(x => x.Id, x => x.i);
        var batch = Assert.Single(fed);
        Assert.Equal(want.Count, batch.Examples.Count);
        var tokens = batch.Tokens;
        int len = tokens.SequenceLength;
        var seenRows = new HashSet<int>();
        foreach (var example in batch.Examples)
        {
            var w = want[lines[example.Id]];
            int[] ids = [.. w.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32())];
            int[] promptIds = [.. w.GetProperty("prompt_ids").EnumerateArray().Select(x => x.GetInt32())];
            Assert.Equal(promptIds, ids[..promptIds.Length]);
            Assert.True(seenRows.Add(example.Row));
            Assert.Equal(0, example.Start);
            Assert.Equal(ids.Length, example.Length);
            Assert.Equal(promptIds.Length, example.PromptLength);

            int row = example.Row * len;
            // input_ids: Hugging Face's ids for the whole conversation, then padding.
            Assert.Equal(ids.Select(i => (long)i), tokens.InputIds.AsSpan(row, ids.Length).ToArray());
            // labels (already shifted: position p predicts token p + 1): -100 over the prompt; the response tokens,
            // from the first token after Hugging Face's add_generation_prompt rendering to the template's closing tokens.
            for (int p = 0; p < len; p++)
            {
                long label = tokens.Labels[row + p];
                long expectedLabel = p >= promptIds.Length - 1 && p < ids.Length - 1 ? ids[p + 1] : ChatTemplate.IgnoreIndex;
                Assert.True(expectedLabel == label, $"{name}, {example.Id}: label at {p} is {label}, expected {expectedLabel}");
                Assert.Equal(p < promptIds.Length ? 1 : 0, batch.PromptMask[row + p]);
            }
            if (tokens.AttentionMask is { } mask)
                for (int p = 0; p < len; p++) Assert.Equal(p < ids.Length ? 1 : 0, mask[row + p]);
        }

        // The rendered text a reader sees is Hugging Face's too (SmolLM2 adds its default system prompt when none is given).
        var template = chosen.Template!;
        var examples = DatasetMix.Parse([data]).Load();
        for (int i = 0; i < examples.Count; i++)
        {
            Assert.Equal(want[i].GetProperty("prompt_text").GetString(), template.RenderPrompt(examples[i].Context));
            Assert.Equal(want[i].GetProperty("text").GetString(), template.Render(examples[i].Context, examples[i].Response));
        }
        if (name == "smollm2-135m-instruct")
            Assert.StartsWith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM", want[1].GetProperty("prompt_text").GetString());
    }
}
