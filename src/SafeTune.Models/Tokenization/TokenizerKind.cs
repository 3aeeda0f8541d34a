namespace SafeTune.Models.Tokenization;

/// <summary>The tokenization algorithm behind a <see cref="TextTokenizer"/>.</summary>
public enum TokenizerKind
{
    /// <summary>Byte-level BPE (GPT-2, Qwen, Llama-3): a Hub <c>tokenizer.json</c> or a <c>vocab.json</c> + <c>merges.txt</c> pair.</summary>
    ByteLevelBpe,

    /// <summary>A SentencePiece BPE model (<c>tokenizer.model</c>, Llama-2 family).</summary>
    SentencePiece,

    /// <summary>WordPiece (BERT family, <c>vocab.txt</c>).</summary>
    WordPiece,

    /// <summary>A tiktoken encoding identified by name (<c>gpt2</c>, <c>cl100k_base</c>, ...).</summary>
    Tiktoken,
}
