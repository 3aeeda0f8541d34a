using SafeTune.Models.Chat;
using SafeTune.Onnx;
using SafeTune.Runtime.Training;
using SafeTune.TestSupport;
using SafeTune.Training.Data;

namespace SafeTune.Training.Tests;

public sealed class SftBatcherTests : IClassFixture<TinyChatFixture>
{
    private readonly TinyChat _chat;

    public SftBatcherTests(TinyChatFixture fixture) => _chat = fixture.Chat;

    private static SftExample Example(int i, string prompt, string response) =>
        new($"mem.jsonl:{i}", [ChatMessage.User(prompt)], response, "mem.jsonl", i, SftFormat.PromptResponse);

    private IReadOnlyList<SftExample> Examples(int n) =>
        [.. Enumerable.Range(1, n).Select(i => Example(i, $"What is {i} plus {i % 7}?", $"{i} plus {i % 7} is {i + i % 7}." + new string('!', i % 5)))];

    [Fact]
    public void A_chat_model_with_a_jinja_template_gets_the_prompt_tokens_hugging_face_builds()
    {
        // TinyLlama's folder: its own tokenizer.json and its chat template in tokenizer_config.json. The fixture holds
        // transformers.js's apply_chat_template ids for the prompt and for the whole conversation.
        var dir = Repo.Fixture("tokenizers", "hub", "tinyllama");
        var tokenizer = Models.Tokenization.TokenizerLoader.Load(dir);
        var choice = TemplateChoice.Resolve(null, dir, tokenizer, ChatTemplates.Plain);
        Assert.Equal(TemplateOrigin.Model, choice.Origin);
        var template = choice.Template!;
        Assert.IsType<JinjaChatTemplate>(template);
        using var expected = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "expected.json")));
        var chat = expected.RootElement.GetProperty("chats")[2];
        var context = chat.GetProperty("messages").EnumerateArray()
            .Select(m => new ChatMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)).ToList();
        var example = new SftExample("chat.jsonl:1", context, chat.GetProperty("response").GetString()!, "chat.jsonl", 1, SftFormat.Messages);
        var tokenized = Assert.Single(SftTokenizer.Tokenize([example], tokenizer, template).Examples);
        int[] promptIds = [.. chat.GetProperty("prompt_ids").EnumerateArray().Select(x => x.GetInt32())];
        int[] fullIds = [.. chat.GetProperty("full_ids").EnumerateArray().Select(x => x.GetInt32())];
        Assert.Equal(fullIds, tokenized.Ids);
        Assert.Equal(promptIds.Length, tokenized.PromptLength);
        var labels = tokenized.Labels();
        Assert.Equal(promptIds.Length - 1, labels.TakeWhile(l => l == ChatTemplate.IgnoreIndex).Count());
    }

    [Fact]
    public void Tokenize_masks_the_prompt_and_truncation_keeps_the_prompt_end()
    {
        var e = Example(1, "What is the capital of France? Please answer in one sentence.", "The capital of France is Paris.");
        var full = _chat.Template.Tokenize(_chat.Tokenizer, e.Context, e.Response);
        var whole = Assert.Single(SftTokenizer.Tokenize([e], _chat.Tokenizer, _chat.Template).Examples);
        Assert.Equal(full.Ids, whole.Ids);
        Assert.Equal(full.PromptLength, whole.PromptLength);
        Assert.False(whole.Truncated);

        // Room for the prompt and 3 response tokens: the response is cut at its end.
        var cut = SftTokenizer.Tokenize([e], _chat.Tokenizer, _chat.Template, new TokenizeOptions { MaxLength = full.PromptLength + 3 });
        var c = Assert.Single(cut.Examples);
        Assert.True(c.Truncated);
        Assert.Equal(full.Ids[..(full.PromptLength + 3)], c.Ids);
        Assert.Equal(3, c.ResponseTokens);
        Assert.Equal(3, c.Labels().Count(l => l != ChatTemplate.IgnoreIndex));

        // With a reserve, the prompt loses tokens from its start and keeps its end (the assistant header).
        var reserved = Assert.Single(SftTokenizer.Tokenize([e], _chat.Tokenizer, _chat.Template,
            new TokenizeOptions { MaxLength = 16, ResponseReserve = 4 }).Examples);
        Assert.Equal(12, reserved.PromptLength);
        Assert.Equal(full.Ids[(full.PromptLength - 12)..(full.PromptLength + 4)], reserved.Ids);
        Assert.EndsWith("<|im_start|>assistant\n", _chat.Tokenizer.Decode(reserved.Ids[..reserved.PromptLength]));

        // A prompt that fills the whole length leaves no response token: dropped, or an error naming the line.
        var filled = new TokenizeOptions { MaxLength = full.PromptLength };
        var dropped = SftTokenizer.Tokenize([e, Example(2, "Hi", "Hello.")], _chat.Tokenizer, _chat.Template, filled);
        Assert.Equal(["mem.jsonl:1"], dropped.Dropped);
        Assert.Equal("mem.jsonl:2", Assert.Single(dropped.Examples).Id);
        var error = Assert.Throws<InvalidDataException>(() => SftTokenizer.Tokenize([e], _chat.Tokenizer, _chat.Template,
            filled with { DropExamplesWithoutResponse = false }));
        Assert.Contains("mem.jsonl: line 1: the prompt alone has", error.Message);
    }

    [Fact]
    public void Padded_steps_cover_each_epoch_once_with_consistent_tensors()
    {
        var set = SftTokenizer.Tokenize(Examples(23), _chat.Tokenizer, _chat.Template);
        int pad = SftBatcher.PadIdOf(_chat.Tokenizer);
        var batcher = new SftBatcher(set.Examples, pad, new BatchingOptions { MicroBatchSize = 4, GradientAccumulationSteps = 2, Seed = 5 });
        Assert.Equal(3, batcher.StepsPerEpoch); // 23 rows / 8 per step, rounded up
        Assert.Equal(9, batcher.StepsFor(3));   // 69 rows

        var steps = batcher.Steps().Take((int)batcher.StepsFor(2)).ToList();
        var rows = steps.SelectMany(s => s.MicroBatches).SelectMany(m => m.Rows).Select(r => Assert.Single(r.ExampleIds)).ToList();
        Assert.Equal(set.Examples.Select(e => e.Id).Order(), rows.Take(23).Order());
        Assert.Equal(set.Examples.Select(e => e.Id).Order(), rows.Skip(23).Take(23).Order());
        Assert.NotEqual(rows.Take(23), rows.Skip(23).Take(23)); // every epoch has its own order
        Assert.Equal([0, 0, 0, 1, 1, 1], steps.Select(s => s.Epoch));

        var byId = set.Examples.ToDictionary(e => e.Id);
        foreach (var step in steps)
        {
            Assert.Equal(2, step.MicroBatches.Count);
            Assert.Equal(1f, step.LossWeight(0) + step.LossWeight(1), 5);
            foreach (var m in step.MicroBatches)
            {
                var b = m.Tokens;
                Assert.Equal(4, b.BatchSize);
                Assert.Equal(m.Rows.Max(r => r.Length), b.SequenceLength); // padded to the longest row
                int counted = 0;
                for (int r = 0; r < b.BatchSize; r++)
                {
                    var e = byId[m.Rows[r].ExampleIds[0]];
                    Assert.StartsWith($"{e.Example.Position} plus", Assert.Single(m.Rows[r].Examples).Response); // the text, e.g. for a judge
                    for (int t = 0; t < b.SequenceLength; t++)
                    {
                        int i = r * b.SequenceLength + t;
                        bool real = t < e.Ids.Length;
                        Assert.Equal(real ? e.Ids[t] : pad, b.InputIds[i]);
                        Assert.Equal(real ? 1 : 0, b.AttentionMask![i]);
                        Assert.Equal(t < e.PromptLength ? 1 : 0, m.PromptMask[i]);
                        // Shifted labels: position t predicts token t + 1 when that token is a response token.
                        long expected = t + 1 < e.Ids.Length && t + 1 >= e.PromptLength ? e.Ids[t + 1] : ChatTemplate.IgnoreIndex;
                        Assert.Equal(expected, b.Labels[i]);
                        if (expected != ChatTemplate.IgnoreIndex) counted++;
                    }
                }
                Assert.Equal(counted, m.ResponseTokens);
                Assert.Equal(m.Rows.Sum(r => r.Segments[0].ResponseTokens), m.ResponseTokens);
            }
        }
    }

    [Fact]
    public void A_restarted_batcher_gives_the_same_steps()
    {
        var set = SftTokenizer.Tokenize(Examples(17), _chat.Tokenizer, _chat.Template);
        foreach (var layout in new[] { BatchLayout.Pad, BatchLayout.Pack })
        {
            var options = new BatchingOptions { MicroBatchSize = 3, GradientAccumulationSteps = 2, Seed = 11, Layout = layout, SequenceLength = layout == BatchLayout.Pack ? 64 : null };
            var first = new SftBatcher(set.Examples, 0, options).Steps().Take(12).ToList();
            var resumed = new SftBatcher(set.Examples, 0, options).Steps(firstStep: 7).Take(5).ToList();
            for (int i = 0; i < 5; i++) AssertSameStep(first[7 + i], resumed[i]);
            AssertSameStep(first[3], new SftBatcher(set.Examples, 0, options).GetStep(3));
            var otherSeed = new SftBatcher(set.Examples, 0, options with { Seed = 12 }).GetStep(0);
            Assert.NotEqual(Ids(first[0]), Ids(otherSeed));
        }

        static IEnumerable<string> Ids(SftStep s) => s.MicroBatches.SelectMany(m => m.Rows).SelectMany(r => r.ExampleIds);
        static void AssertSameStep(SftStep a, SftStep b)
        {
            Assert.Equal(a.Step, b.Step);
            Assert.Equal(a.Epoch, b.Epoch);
            Assert.Equal(Ids(a), Ids(b));
            for (int m = 0; m < a.MicroBatches.Count; m++)
            {
                Assert.Equal(a.MicroBatches[m].Tokens.InputIds, b.MicroBatches[m].Tokens.InputIds);
                Assert.Equal(a.MicroBatches[m].Tokens.Labels, b.MicroBatches[m].Tokens.Labels);
                Assert.Equal(a.MicroBatches[m].PromptMask, b.MicroBatches[m].PromptMask);
            }
        }
    }

    [Fact]
    public void Packing_fills_fixed_rows_and_masks_labels_at_boundaries()
    {
        var set = SftTokenizer.Tokenize(Examples(40), _chat.Tokenizer, _chat.Template);
        var batcher = new SftBatcher(set.Examples, 0, new BatchingOptions { MicroBatchSize = 2, Layout = BatchLayout.Pack, SequenceLength = 96, Seed = 1 });
        var byId = set.Examples.ToDictionary(e => e.Id);
        var seen = new List<string>();
        for (long s = 0; s < batcher.StepsPerEpoch; s++)
        {
            var m = Assert.Single(batcher.GetStep(s).MicroBatches);
            Assert.Equal(96, m.Tokens.SequenceLength);
            foreach (var (row, r) in m.Rows.Select((row, r) => (row, r)))
            {
                Assert.InRange(row.Length, 1, 96);
                foreach (var seg in row.Segments)
                {
                    var e = byId[seg.ExampleId];
                    var labels = e.Labels();
                    for (int k = 0; k < seg.Length; k++)
                    {
                        int i = r * 96 + seg.Start + k;
                        Assert.Equal(e.Ids[k], m.Tokens.InputIds[i]);
                        Assert.Equal(labels[k], m.Tokens.Labels[i]);
                        Assert.Equal(k < seg.PromptLength ? 1 : 0, m.PromptMask[i]);
                    }
                    // The last token of an example never predicts the next example's first token.
                    Assert.Equal(ChatTemplate.IgnoreIndex, m.Tokens.Labels[r * 96 + seg.Start + seg.Length - 1]);
                }
                for (int t = row.Length; t < 96; t++) Assert.Equal(0, m.Tokens.AttentionMask![r * 96 + t]);
            }
            seen.AddRange(m.Rows.SelectMany(x => x.ExampleIds));
        }
        // The first epoch's rows come first in the stream and hold every example once.
        Assert.Equal(set.Examples.Select(e => e.Id).Order(), seen.Take(40).Order());
        Assert.True(batcher.StepsPerEpoch < 40 / 2, "packing puts several examples in a row");
    }

    [Fact]
    public void Micro_batch_weights_give_the_mean_over_the_whole_step()
    {
        // The token-weighted mean of the micro-batch losses equals the loss of all the step's rows as one batch.
        var set = SftTokenizer.Tokenize(Examples(12), _chat.Tokenizer, _chat.Template);
        var options = new BatchingOptions { MicroBatchSize = 3, GradientAccumulationSteps = 4, SequenceLength = set.LongestExample };
        var step = new SftBatcher(set.Examples, 0, options).GetStep(0);
        using var loss = GradientSession.Create(_chat.Plain());
        double weighted = step.MicroBatches.Select((m, i) => step.LossWeight(i) * loss.Run(m.Tokens).Loss).Sum();
        var all = new TokenBatch([.. step.MicroBatches.SelectMany(m => m.Tokens.InputIds)], [.. step.MicroBatches.SelectMany(m => m.Tokens.Labels)],
            null, 12, set.LongestExample);
        Assert.Equal(loss.Run(all).Loss, weighted, 5);
    }

    [Fact]
    public void Bad_options_and_lengths_are_named()
    {
        var set = SftTokenizer.Tokenize(Examples(4), _chat.Tokenizer, _chat.Template);
        var e = Assert.Throws<UserInputException>(() => new SftBatcher(set.Examples, 0, new BatchingOptions { SequenceLength = 8 }));
        Assert.Contains("more than the sequence length 8", e.Message);
        Assert.Throws<UserInputException>(() => new SftBatcher(set.Examples, 0, new BatchingOptions { MicroBatchSize = 0 }));
        Assert.Throws<UserInputException>(() => new SftBatcher([], 0));
    }
}

public sealed class VocabularyCheckTests : IClassFixture<TinyChatFixture>
{
    private readonly TinyChat _chat;

    public VocabularyCheckTests(TinyChatFixture fixture) => _chat = fixture.Chat;

    [Fact]
    public void A_tokenizer_larger_than_the_embedding_is_refused()
    {
        VocabularyCheck.Ensure(_chat.Cached(), "ok.onnx", _chat.Tokenizer);
        VocabularyCheck.Ensure(_chat.Plain(extraRows: 13), "padded.onnx", _chat.Tokenizer); // rows beyond the tokenizer are fine
        var small = SafeTune.Models.Decoders.LlamaGraph.Build(_chat.Config() with { VocabSize = 300 }, seed: 1);
        Assert.Equal(300, VocabularyCheck.ModelVocabulary(small));
        var e = Assert.Throws<InvalidDataException>(() => VocabularyCheck.Ensure(small, "small.onnx", _chat.Tokenizer));
        Assert.Contains($"the tokenizer {_chat.TokenizerPath} has {_chat.Tokenizer.VocabularySize} token ids", e.Message);
        Assert.Contains("the model small.onnx has 300 embedding rows", e.Message);
    }
}

/// <summary>One <see cref="TinyChat"/> per test class.</summary>
public sealed class TinyChatFixture : IDisposable
{
    public TinyChat Chat { get; } = new();

    public void Dispose() => Chat.Dispose();
}
